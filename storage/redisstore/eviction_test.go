package redisstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// A Redis that may evict keys is reported when the client connects, and
// again when a later connection (a reconnect) finds the policy changed;
// noeviction is not.
func TestEvictionPolicyIsReported(t *testing.T) {
	tests := []struct {
		policy string
		warned bool
	}{
		{"noeviction", false},
		{"allkeys-lru", true},
		{"volatile-ttl", true},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Args("--maxmemory-policy", tc.policy))
			var mu sync.Mutex
			var heard []string
			c := connect(t, redisstore.Options{URL: srv.URL, PoolSize: 4, EvictionWarning: func(server, policy string) {
				mu.Lock()
				defer mu.Unlock()
				heard = append(heard, server+" "+policy)
			}})
			ctx := context.Background()
			var wg sync.WaitGroup
			for range 8 { // several connections: one report
				wg.Add(1)
				go func() { defer wg.Done(); c.Ping(ctx) }()
			}
			wg.Wait()
			mu.Lock()
			got := append([]string(nil), heard...)
			mu.Unlock()
			if tc.warned && (len(got) != 1 || !strings.HasSuffix(got[0], " "+tc.policy)) {
				t.Fatalf("reports %q, want one for %s", got, tc.policy)
			}
			if !tc.warned && len(got) != 0 {
				t.Fatalf("reports %q for noeviction", got)
			}

			// The operator changes the policy; the next connection reports it.
			if _, err := redistest.Do(srv.Addr, "CONFIG", "SET", "maxmemory-policy", "allkeys-random"); err != nil {
				t.Fatal(err)
			}
			if _, err := redistest.Do(srv.Addr, "CLIENT", "KILL", "TYPE", "normal"); err != nil {
				t.Fatal(err)
			}
			c.Ping(ctx) // a dropped connection: go-redis reconnects
			c.Ping(ctx)
			mu.Lock()
			defer mu.Unlock()
			if len(heard) == 0 || !strings.HasSuffix(heard[len(heard)-1], " allkeys-random") {
				t.Fatalf("after the change: reports %q, want allkeys-random last", heard)
			}
		})
	}
}
