package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// A device behind a load balancer without stickiness polls instance A and
// instance B in turn. Each instance remembers the device records it last
// saw (storage/redisstore/recent.go), and that memory is stale as soon as
// the other instance writes the record; the compare-and-swap that applies
// every update must correct it (storage/redisstore/devices.go). So each
// sequence runs twice at once, on a code of its own: on A alone, and on A
// and B in turn with the same waits. Both must get the answers
// flow/token.go's rules give, step for step the same.
//
// The processes run on the real clock: instanceConfig's interval is 1s,
// so pollSlack is 200ms (a poll less than 800ms after the last one is
// early) and every early poll is within retryWindow (1s): the first one
// is forgiven as a retry. After a slow_down the interval is 6s (slack
// 1s: early under 5s), then 11s, and so on.

// turnStep is one step of a sequence. on names the instance in the run
// on A and B (0 for A, 1 for B); the run on one instance does everything
// on A.
type turnStep struct {
	do    string        // "issue", "poll", "polls" (n at once), "approve", "operator deny", "person deny"
	on    int           // 0: A, 1: B
	after time.Duration // wait before the step, from the end of the previous one
	n     int           // polls: how many at once (alternating over both instances)
	want  string        // poll: "tokens", or the error code, then optionally ": " and text the description must hold
	why   string
}

// turnResult is what a step got, for the comparison and the log.
type turnResult struct {
	step   string
	at     time.Duration // when it was sent, from the first step
	took   time.Duration
	answer string // normalised: "200 tokens" or "400 error: description"; sorted counts for "polls"
}

func TestDeviceAlternatingInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the caddy binary")
	}
	srv := redistest.Start(t)
	buildCaddy(t) // before the clock below starts
	start := time.Now()
	up := startUpstream(t)
	clientID := up.Config().ClientID
	siteA := fmt.Sprintf("http://127.0.0.1:%d", freePort())
	siteB := fmt.Sprintf("http://127.0.0.1:%d", freePort())
	adminA := freePort()
	storage := redisStorageWithPrefix(srv.URL, newKeyPrefix())
	startCaddyProcess(t, withAdminAt(t, instanceConfig(siteA, up, storage), adminA), siteA+"/device")
	startCaddyProcess(t, instanceConfig(siteB, up, storage), siteB+"/device")
	handlerA := adminHandlerAt(t, adminA)
	started := time.Since(start)

	const interval = time.Second // instanceConfig's
	cases := []struct {
		name  string
		steps []turnStep
	}{{
		name: "polls at the interval",
		steps: []turnStep{
			{do: "issue", on: 1},
			{do: "poll", on: 0, want: "authorization_pending", why: "first poll"},
			{do: "poll", on: 1, after: interval, want: "authorization_pending", why: "at the interval"},
			{do: "poll", on: 0, after: interval, want: "authorization_pending", why: "at the interval"},
			{do: "poll", on: 1, after: interval * 9 / 10, want: "authorization_pending", why: "a little early, within the slack (200ms)"},
			{do: "poll", on: 0, after: interval, want: "authorization_pending", why: "at the interval"},
		},
	}, {
		name: "repeat forgiven once, then slow_down for good",
		steps: []turnStep{
			{do: "issue", on: 1},
			{do: "poll", on: 0, want: "authorization_pending", why: "first poll"},
			{do: "poll", on: 1, want: "authorization_pending", why: "an immediate repeat: forgiven once as a retry"},
			{do: "poll", on: 0, after: 300 * time.Millisecond, want: "slow_down: wait 6s", why: "a second early poll: the interval grows by 5s"},
			{do: "poll", on: 1, want: "authorization_pending", why: "the immediate repeat of that poll: forgiven once again"},
			{do: "poll", on: 0, after: 6 * time.Second, want: "authorization_pending", why: "at the grown interval"},
			{do: "poll", on: 1, after: interval * 13 / 10, want: "slow_down: wait 11s", why: "at the old interval (past retryWindow): too early now"},
			{do: "poll", on: 0, after: interval * 13 / 10, want: "slow_down: wait 16s", why: "at the old interval again, on the other instance"},
		},
	}, {
		name: "a forgiven poll does not move the interval",
		steps: []turnStep{
			{do: "issue", on: 1},
			{do: "poll", on: 0, want: "authorization_pending", why: "first poll"},
			{do: "poll", on: 1, after: interval / 2, want: "authorization_pending", why: "early, within retryWindow: forgiven"},
			{do: "poll", on: 0, after: interval / 2, want: "authorization_pending", why: "an interval after the first poll, half of one after the forgiven"},
			{do: "poll", on: 1, after: interval / 4, want: "authorization_pending", why: "early: forgiven (the last poll was on time)"},
			{do: "poll", on: 0, after: interval / 4, want: "slow_down: wait 6s", why: "early again: not forgiven twice"},
		},
	}, {
		name: "approved: one delivery among concurrent polls",
		steps: []turnStep{
			{do: "issue", on: 1},
			{do: "poll", on: 0, want: "authorization_pending", why: "first poll"},
			{do: "poll", on: 1, after: interval, want: "authorization_pending", why: "both instances remember the pending record"},
			{do: "approve", on: 1},
			{do: "polls", n: 8, want: "tokens", why: "exactly one gets the tokens, the others invalid_grant"},
			{do: "poll", on: 0, after: interval, want: "invalid_grant", why: "delivered"},
			{do: "poll", on: 1, want: "invalid_grant", why: "delivered"},
		},
	}, {
		name: "operator deny on A after polls on B",
		steps: []turnStep{
			{do: "issue", on: 1},
			{do: "poll", on: 1, want: "authorization_pending", why: "first poll: B remembers the pending record"},
			{do: "operator deny", on: 0},
			{do: "poll", on: 1, want: "access_denied: denied by the server's operator", why: "B's memory is pending (and the poll early): the swap corrects it"},
			{do: "poll", on: 1, after: interval, want: "access_denied: denied by the server's operator", why: "denied, at the interval"},
			{do: "poll", on: 0, want: "access_denied: denied by the server's operator", why: "denied"},
		},
	}, {
		name: "person deny on A after polls on B",
		steps: []turnStep{
			{do: "issue", on: 1},
			{do: "poll", on: 1, want: "authorization_pending", why: "first poll: B remembers the pending record"},
			{do: "poll", on: 1, after: interval, want: "authorization_pending", why: "at the interval"},
			{do: "person deny", on: 0},
			{do: "poll", on: 1, want: "access_denied: the user denied the request", why: "B's memory is pending (and the poll early): the swap corrects it"},
			{do: "poll", on: 1, after: interval, want: "access_denied: the user denied the request", why: "denied, at the interval"},
			{do: "poll", on: 0, want: "access_denied: the user denied the request", why: "denied"},
		},
	}}

	r := &turnRunner{clientID: clientID, adminA: adminA, handlerA: handlerA}
	// Every case on both layouts at once: they are independent codes and
	// the waits are real. Subtests run from goroutines of our own rather
	// than t.Parallel, which -parallel (GOMAXPROCS) would bound.
	var cs sync.WaitGroup
	for _, tc := range cases {
		cs.Add(1)
		go func() {
			defer cs.Done()
			t.Run(tc.name, func(t *testing.T) {
				var alone, inTurn []turnResult
				var runs sync.WaitGroup
				runs.Add(2)
				go func() {
					defer runs.Done()
					t.Run("A alone", func(t *testing.T) { alone = r.run(t, [2]string{siteA, siteA}, tc.steps) })
				}()
				go func() {
					defer runs.Done()
					t.Run("A and B in turn", func(t *testing.T) { inTurn = r.run(t, [2]string{siteA, siteB}, tc.steps) })
				}()
				runs.Wait()
				if len(alone) != len(inTurn) {
					t.Fatalf("the runs ended at different steps:\nA alone:\n%s\nA and B in turn:\n%s", turnLog(alone), turnLog(inTurn))
				}
				for i := range alone {
					if alone[i].answer != inTurn[i].answer {
						t.Errorf("step %d (%s): %q on A alone, %q on A and B in turn\nA alone:\n%s\nA and B in turn:\n%s",
							i+1, inTurn[i].step, alone[i].answer, inTurn[i].answer, turnLog(alone), turnLog(inTurn))
						break
					}
				}
			})
		}()
	}
	cs.Wait()
	t.Logf("two instances started in %v; %d sequences, each on one instance and on two: %v after the build",
		started.Round(100*time.Millisecond), len(cases), time.Since(start).Round(100*time.Millisecond))
}

// turnRunner runs sequences against the instances.
type turnRunner struct {
	clientID string
	adminA   int    // A's admin port
	handlerA string // the handler's ID in A's admin API
	upstream sync.Mutex
}

// run does steps on sites (sites[on]) with a code of its own, checks each
// poll's answer against the step's want, and returns what each step got.
func (r *turnRunner) run(t *testing.T, sites [2]string, steps []turnStep) []turnResult {
	t.Helper()
	var (
		deviceCode, userCode string
		results              []turnResult
		first                time.Time
	)
	defer func() {
		if !t.Failed() {
			t.Logf("\n%s", turnLog(results))
		}
	}()
	for i, s := range steps {
		time.Sleep(s.after)
		site := sites[s.on]
		sent := time.Now()
		if i == 0 {
			first = sent
		}
		res := turnResult{step: fmt.Sprintf("%s on %s", s.do, turnName(sites, s.on)), at: sent.Sub(first)}
		if s.why != "" {
			res.step += " (" + s.why + ")"
		}
		switch s.do {
		case "issue":
			status, auth := postFormTo(t, site, "/device/code", map[string]string{"client_id": r.clientID, "scope": "openid profile"})
			if status != http.StatusOK {
				t.Fatalf("device code from %s: %d %v", site, status, auth)
			}
			if auth["interval"] != float64(1) {
				t.Fatalf("the sequences are written for an interval of 1s; the code says %v", auth["interval"])
			}
			deviceCode, userCode = auth["device_code"].(string), auth["user_code"].(string)
		case "poll":
			a, err := pollAt(site, r.clientID, deviceCode)
			if err != nil {
				t.Fatalf("step %d: %v", i+1, err)
			}
			res.answer = turnAnswer(a)
			if !turnWanted(res.answer, s.want) {
				t.Errorf("step %d, %s: %s, want %s", i+1, res.step, res.answer, s.want)
			}
		case "polls":
			answers, err := concurrentPolls(sites, s.n, r.clientID, deviceCode)
			if err != nil {
				t.Fatalf("step %d: %v", i+1, err)
			}
			counts := map[string]int{}
			for _, a := range answers {
				counts[turnAnswer(a)]++
			}
			var parts []string
			for answer, n := range counts {
				parts = append(parts, fmt.Sprintf("%d× %s", n, answer))
			}
			slices.Sort(parts)
			res.answer = strings.Join(parts, "; ")
			if len(counts) != 2 || counts["200 tokens"] != 1 || counts["400 invalid_grant: unknown or already used device_code"] != s.n-1 {
				t.Errorf("step %d, %d concurrent polls of an approved code on %s: %s; want exactly one with the tokens, the others invalid_grant",
					i+1, s.n, turnName(sites, -1), res.answer)
			}
		case "approve":
			r.approve(t, site, userCode)
		case "person deny":
			b := newBrowser(t)
			confirm := b.get(site + "/device?code=" + url.QueryEscape(userCode))
			if !confirm.is("confirm") {
				t.Fatalf("confirmation page at %s: %d\n%s", site, confirm.status, confirm.body)
			}
			done := b.postPage(site, "/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {userCode}, "action": {"deny"}})
			if !done.is("denied") {
				t.Fatalf("deny at %s: %d %s\n%s", site, done.status, done.url, done.body)
			}
		case "operator deny":
			if site != sites[0] {
				t.Fatal("only A has the admin API")
			}
			status, body := adminPost(t, r.adminA, "/device-flow/"+url.PathEscape(r.handlerA)+"/codes/"+url.PathEscape(userCode)+"/deny")
			if status != http.StatusOK || !strings.Contains(body, `"status":"denied"`) {
				t.Fatalf("operator deny on A: %d %s", status, body)
			}
		default:
			t.Fatalf("unknown step %q", s.do)
		}
		res.took = time.Since(sent)
		results = append(results, res)
	}
	return results
}

// approve signs a person in at site and approves userCode there.
func (r *turnRunner) approve(t *testing.T, site, userCode string) {
	t.Helper()
	// mockoidc's session store is not safe for concurrent use: one
	// sign-in at a time.
	r.upstream.Lock()
	defer r.upstream.Unlock()
	b := newBrowser(t)
	confirm := b.get(site + "/device?code=" + url.QueryEscape(userCode))
	if !confirm.is("confirm") {
		t.Fatalf("confirmation page at %s: %d\n%s", site, confirm.status, confirm.body)
	}
	done := b.postPage(site, "/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {userCode}, "action": {"approve"}})
	if !done.is("success") || !strings.HasPrefix(done.url, site+"/") {
		t.Fatalf("approve at %s: %d %s\n%s", site, done.status, done.url, done.body)
	}
}

// concurrentPolls sends n polls of deviceCode at once, alternating over
// sites, and returns their answers.
func concurrentPolls(sites [2]string, n int, clientID, deviceCode string) ([]deviceAnswer, error) {
	answers := make([]deviceAnswer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			answers[i], errs[i] = pollAt(sites[i%2], clientID, deviceCode)
		}()
	}
	close(gate)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return answers, nil
}

// turnAnswer normalises a token endpoint's answer: the tokens differ from
// run to run, their presence does not.
func turnAnswer(a deviceAnswer) string {
	switch {
	case a.status == http.StatusOK && a.out["access_token"] != nil && a.out["refresh_token"] != nil:
		return "200 tokens"
	case a.status == http.StatusBadRequest:
		return fmt.Sprintf("400 %s: %v", a.err(), a.out["error_description"])
	}
	b, _ := json.Marshal(a.out)
	return fmt.Sprintf("%d %s", a.status, b)
}

// turnWanted says whether a normalised answer is the one want names.
func turnWanted(answer, want string) bool {
	if want == "tokens" {
		return answer == "200 tokens"
	}
	code, text, _ := strings.Cut(want, ": ")
	return strings.HasPrefix(answer, "400 "+code+": ") && strings.Contains(answer, text)
}

func turnName(sites [2]string, on int) string {
	switch {
	case sites[0] == sites[1]:
		return "A"
	case on < 0:
		return "A and B"
	case on == 0:
		return "A"
	}
	return "B"
}

func turnLog(results []turnResult) string {
	var b strings.Builder
	for i, r := range results {
		fmt.Fprintf(&b, "  %d. +%-6v %-75s took %-6v %s\n", i+1, r.at.Round(time.Millisecond), r.step, r.took.Round(time.Millisecond), r.answer)
	}
	return b.String()
}

// withAdminAt turns instanceConfig's admin off into an admin endpoint on
// localhost:port, for the operator's routes.
func withAdminAt(t *testing.T, config string, port int) string {
	t.Helper()
	if !strings.Contains(config, "\tadmin off\n") {
		t.Fatalf("instanceConfig no longer says admin off:\n%s", config)
	}
	return strings.Replace(config, "\tadmin off\n", fmt.Sprintf("\tadmin localhost:%d\n", port), 1)
}

// adminHandlerAt is the ID of the one device_flow handler in the admin API
// at localhost:port.
func adminHandlerAt(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/device-flow/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var handlers []struct {
		Handler string `json:"handler"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&handlers); err != nil || len(handlers) != 1 {
		t.Fatalf("GET /device-flow/ on A's admin API: %d, %v, %+v", resp.StatusCode, err, handlers)
	}
	return handlers[0].Handler
}

// adminPost posts to the admin API at localhost:port.
func adminPost(t *testing.T, port int, path string) (int, string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://localhost:%d%s", port, path), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
