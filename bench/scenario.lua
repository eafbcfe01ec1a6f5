-- One wrk script for every scenario of bench/run.sh:
--
--   wrk -s bench/scenario.lua <url> -- <scenario> <codes file> <threads> [check]
--
-- scenario is one of
--   issue     POST /device/code: a new device code per request
--   pending   POST /device/token polling codes that are still pending, each
--             no faster than its interval (see below)
--   slowdown  like pending, but every 5th request polls one of a few "hot"
--             codes again at once. The token endpoint forgives one
--             immediate repeat (golang.org/x/oauth2 sends every poll
--             twice), so every other hot poll is slow_down: ~10% of all
--             answers
--   browser   GET /device: the page where a person types the user code
--   baseline  the pending requests, sent to Caddy's `respond` (same client
--             work per request, so the ratio compares the servers only)
--
-- Pacing: each thread takes every <threads>-th code of the file and polls
-- its codes round-robin, so a code comes round again after
-- (codes per thread) / (thread's requests per second). bench/run.sh issues
-- enough codes, for the interval it configures, that this is longer than
-- the interval minus the server's slack; the counts printed at the end
-- prove it: a pending run must show no slow_down.
--
-- Every scenario, the baseline included, builds its requests in request(),
-- so the client's work per request is the same in all of them. done()
-- prints one RESULT line that bench/run.sh parses, with the slowest code's
-- period between two polls ("period_s") for the pacing claim above.
--
-- With "check" as the fourth argument, every response is also classified
-- (status and OAuth error) and the counts are printed: the proof that a
-- scenario measures what it claims. It is off by default because wrk then
-- buffers every body and builds a Lua table of every response's headers,
-- which on a shared 2-core machine takes CPU from the server and flatters
-- every ratio.

local thread_count = 0
local threads = {}

function setup(thread)
	thread:set("id", thread_count)
	thread_count = thread_count + 1
	table.insert(threads, thread)
end

local form = "application/x-www-form-urlencoded"
local requests = {}
local hot = {}
local next_req, next_hot = 0, 0

-- read back by done()
scenario = nil
counts = {}
n, sent = 0, 0

local function poll_request(code)
	return wrk.format("POST", "/device/token", { ["Content-Type"] = form },
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=bench&device_code=" .. code)
end

function init(args)
	scenario = args[1]
	local threads_total = tonumber(args[3] or "1")
	if scenario == "issue" then
		requests[1] = wrk.format("POST", "/device/code", { ["Content-Type"] = form }, "client_id=bench")
	elseif scenario == "browser" then
		requests[1] = wrk.format("GET", "/device", { ["Accept"] = "text/html", ["Accept-Language"] = "en" })
	else
		local i = 0
		for line in io.lines(args[2]) do
			if i % threads_total == id then
				table.insert(requests, poll_request(line))
			end
			i = i + 1
		end
		if scenario == "slowdown" then
			-- The first few codes of this thread become its hot codes.
			for _ = 1, 4 do
				table.insert(hot, table.remove(requests, 1))
			end
		end
	end
	n = #requests
	if args[4] ~= "check" then
		response = nil -- wrk asks for bodies and headers only when there is a response()
	end
end

function request()
	sent = sent + 1
	if scenario == "slowdown" and sent % 5 == 0 then
		next_hot = next_hot % #hot + 1
		return hot[next_hot]
	end
	next_req = next_req % n + 1
	return requests[next_req]
end

local kinds = { "authorization_pending", "slow_down", "device_code", "invalid_grant", "expired_token" }

function response(status, headers, body)
	local kind = tostring(status)
	if status ~= 200 or scenario == "issue" then
		for _, k in ipairs(kinds) do
			if string.find(body, k, 1, true) then
				kind = kind .. ":" .. k
				break
			end
		end
	end
	counts[kind] = (counts[kind] or 0) + 1
end

function done(summary, latency, _)
	local total = {}
	local period = math.huge
	local seconds = summary.duration / 1e6
	for _, t in ipairs(threads) do
		for k, v in pairs(t:get("counts")) do
			total[k] = (total[k] or 0) + v
		end
		-- the thread polls its n codes round-robin (4 requests in 5 for
		-- slowdown): each comes round every n / (its requests per second)
		local share = t:get("sent") * (t:get("scenario") == "slowdown" and 0.8 or 1) / seconds
		if share > 0 then
			period = math.min(period, t:get("n") / share)
		end
	end
	local parts = {}
	for k, v in pairs(total) do
		table.insert(parts, k .. "=" .. v)
	end
	table.sort(parts)
	local e = summary.errors
	io.write(string.format("RESULT rps=%.0f p50_us=%d p99_us=%d requests=%d socket_errors=%d non2xx=%d period_s=%.2f kinds=%s\n",
		summary.requests / seconds, latency:percentile(50), latency:percentile(99), summary.requests,
		e.connect + e.read + e.write + e.timeout, e.status, period, table.concat(parts, ",")))
end
