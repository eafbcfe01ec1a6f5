package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// tally takes the steps of flow.Store.Tally over KEYS, in order: for each
// key, ARGV holds its TTL in ms (0: only read) and its limit (0: none). A
// counter's TTL is set by its first hit. It answers the values of the
// steps it took.
var tally = redis.NewScript(`
local out = {}
for i, key in ipairs(KEYS) do
	local ttl, limit = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
	local n
	if ttl > 0 then
		n = redis.call('INCR', key)
		if n == 1 then
			redis.call('PEXPIRE', key, ttl)
		end
	else
		n = tonumber(redis.call('GET', key) or '0')
	end
	out[i] = n
	if ttl > 0 and limit > 0 and n > limit then
		break
	end
end
return out
`)

// Tally: see flow.Store. One script, as the namespace's counters share a
// slot.
func (s *Store) Tally(ctx context.Context, steps ...flow.Tally) ([]int64, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	keys := make([]string, len(steps))
	args := make([]any, 0, 2*len(steps))
	for i, st := range steps {
		keys[i] = s.counterKey(st.Key)
		ttl := int64(0)
		if st.TTL > 0 {
			ttl = max(1, st.TTL.Milliseconds())
		}
		args = append(args, ttl, max(0, st.Limit))
	}
	values, err := tally.Run(ctx, s.c.do, keys, args...).Int64Slice()
	if err != nil {
		return nil, unavailable("tally", err)
	}
	if len(values) == 0 || len(values) > len(steps) {
		return nil, unavailable("tally", fmt.Errorf("%d values for %d steps", len(values), len(steps)))
	}
	return values, nil
}

// Counters: see flow.Store. It SCANs for the counters' keys like Devices
// (list.go) and reads each.
func (s *Store) Counters(ctx context.Context, prefix string, fn func(key string, value int64) bool) error {
	base := s.counterPrefix()
	return s.walk(ctx, base+prefix, func(key, raw string) bool {
		n, err := strconv.ParseInt(raw, 10, 64)
		return err != nil || n <= 0 || fn(key[len(base):], n)
	})
}
