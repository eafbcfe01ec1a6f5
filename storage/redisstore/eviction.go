package redisstore

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A Redis that may evict keys under memory pressure (any maxmemory-policy
// but noeviction; volatile-* ones evict exactly the keys with a TTL, which
// are every code, login and counter) can lose pending codes without a
// word, and with allkeys-* the server secret too. So every new connection
// (at start, and after every reconnect or failover) reads the server's
// policy, and Options.EvictionWarning hears of a risky one, once per
// server and policy. A server that refuses CONFIG GET (managed services
// rename it) is not reported: there is nothing to read.

// evictionCheck remembers the policy last reported per server.
type evictionCheck struct {
	warn     func(addr, policy string)
	mu       sync.Mutex
	reported map[string]string // addr → policy
}

func (e *evictionCheck) onConnect(ctx context.Context, cn *redis.Conn) error {
	policy, ok := maxmemoryPolicy(ctx, cn)
	if !ok {
		return nil // never fail a connection over this check
	}
	addr := cn.String() // "Redis<host:port db:n>"
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reported[addr] == policy {
		return nil
	}
	if e.reported == nil {
		e.reported = map[string]string{}
	}
	e.reported[addr] = policy
	if policy != "noeviction" {
		e.warn(addr, policy)
	}
	return nil
}

func maxmemoryPolicy(ctx context.Context, cn *redis.Conn) (string, bool) {
	got, err := cn.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", false
	}
	policy, ok := got["maxmemory-policy"]
	return policy, ok && policy != ""
}
