// Package redisstore keeps the device flow's state (flow.Store) in Redis, so
// that several instances behind one load balancer share it. It speaks to
// one Redis or Valkey server, a Sentinel-managed primary, or a Redis
// Cluster, through go-redis's UniversalClient.
//
// A Client is the connection; Client.Store(namespace) is one device_flow
// handler's view of it. Stores of different namespaces never see each
// other's records, logins, counters or secrets, even on one Redis under one
// key prefix; Stores of the same namespace share them, whichever Client
// (Caddy instance, config reload) they come from.
//
// # Keys
//
// Every key is <prefix><ns>:<kind>:{<id>}, where prefix is
// Options.KeyPrefix (default "df:") and ns is the first 8 bytes of the
// SHA-256 of the namespace, in hex (16 characters):
//
//	<prefix><ns>:dev:{<user code>}   a device record (storage/record), until ExpiresAt + Grace
//	<prefix><ns>:login:{<key>}       a browser login (JSON), until its ExpiresAt
//	<prefix><ns>:hit:{<ns>}:<key>    a counter, until ttl after its first hit
//	<prefix><ns>:secret:{<name>}     a server secret, forever
//
// The braces are hash tags: on a Redis Cluster a record, a login or a
// secret is one key in its own slot, so codes spread over all masters,
// while a namespace's counters share one slot, so that one script can take
// every step of a Tally. A prefix that holds a hash tag itself ("{df}:")
// puts every key in one slot, which works too but forgoes spreading the
// load over the cluster.
//
// # Round trips
//
// Every method is one round trip to Redis in the common case, and every
// script is sent by its SHA (EVALSHA; the source only once per server):
//
//   - CreateDevice: SET NX.
//   - UpdateDevice (a poll, an approval, a delivery): one compare-and-swap
//     script, when this Client remembers the record (see recent.go);
//     otherwise a GET first. The script writes only if Redis still holds
//     the record fn saw, byte for byte, and otherwise answers with what it
//     holds, so fn runs again on that without another read.
//   - DeviceByUserCode, PutLogin: GET, SET.
//   - TakeLogin: one script that deletes and returns the login if it
//     holds the state.
//   - Tally: one script over the namespace's counters.
//
// These commands go through go-redis's auto-pipeliner, which sends the
// commands of concurrent requests in one write and reads their answers in
// one read: what a round trip costs is mostly those system calls, on both
// sides. A Cluster client also reloads the cluster's shape at the first
// node it cannot reach (failover.go).
//
// # Device records
//
// A device record is one key, named by its normalized user code.
// CreateDevice writes it with SET NX, so a user code held by a live record
// is never given to another (flow.ErrUserCodeTaken). The key expires Grace
// after the record's ExpiresAt; within the grace period DeviceByUserCode
// and UpdateDevice still return the record, and callers compare ExpiresAt
// themselves (a late poll is answered expired_token).
//
// UpdateDevice is optimistic: fn's verdict is applied only if the record is
// still the one fn saw, else fn is called again on the newer one, at most
// MaxAttempts times (with a short random back-off from the third). The
// comparison is on the full value, so an interleaved write that left the
// record identical is not a conflict: fn's verdict depends only on the
// record it was handed. A verdict reached on a remembered record is
// always checked against Redis, Keep included: what a device is told never
// rests on this instance's memory alone.
//
// # Errors
//
// Every failure to reach or use Redis (refused connection, timeout,
// CLUSTERDOWN, READONLY, OOM, ...) is returned wrapped so that
// errors.Is(err, flow.ErrUnavailable) holds, and the original error stays
// reachable with errors.Is/As as well.
package redisstore

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/redis/go-redis/v9"
)

// DefaultGrace is how long a device record outlives its ExpiresAt when
// Options.Grace is zero: long enough that a device still polling right
// after expiry is told expired_token rather than invalid_grant.
const DefaultGrace = 5 * time.Minute

// DefaultKeyPrefix starts every key when Options.KeyPrefix is empty.
const DefaultKeyPrefix = "df:"

// MaxAttempts bounds how often UpdateDevice calls fn when other writers keep
// changing the record in between. Running out is reported as
// flow.ErrUnavailable.
const MaxAttempts = 200

// Options say how to reach Redis and how to lay out keys.
type Options struct {
	// URL is parsed by ParseURL: one redis:// or rediss:// URL, or a list
	// of host:port cluster addresses. Fields below that are set override
	// what the URL says.
	URL string

	// Addrs are host:port addresses: one server, the seed nodes of a
	// cluster (two or more, or one with Cluster set), or the sentinels when
	// MasterName is set.
	Addrs []string
	// Cluster makes a single address a cluster entry point (a
	// configuration endpoint) rather than one server.
	Cluster bool
	// MasterName is the name of the Sentinel-managed primary; Addrs are
	// then the sentinels'.
	MasterName string

	Username string
	Password string
	// DB selects the database on a single server or Sentinel primary;
	// clusters only have database 0.
	DB int
	// TLS turns on TLS with this configuration (rediss:// sets it too).
	TLS *tls.Config

	// Timeouts and pool size; zero keeps go-redis's defaults (5 s dial,
	// 3 s read and write, 10 connections per CPU).
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	PoolSize     int
	// MaxRetries is how often go-redis retries a command that failed on
	// the network; zero keeps its default (3), -1 disables retries.
	MaxRetries int

	// KeyPrefix starts every key (default DefaultKeyPrefix), so that
	// several deployments can share one Redis. Within one prefix, handlers
	// are kept apart by their namespace (Client.Store).
	KeyPrefix string
	// Grace is how long a device record is kept after its ExpiresAt
	// (default DefaultGrace).
	Grace time.Duration
	// RecentRecords is how many device records the Client remembers, so
	// that a poll is one round trip (recent.go); 0 means
	// DefaultRecentRecords, -1 none.
	RecentRecords int

	// EvictionWarning, when set, is called when a Redis server this
	// client connects to may evict keys (see eviction.go), once per
	// server and policy.
	EvictionWarning func(addr, policy string)

	// OnRoundTrip, when set, is called after every round trip to Redis
	// (a command, or a pipeline) with how long it took and whether it
	// failed (a missing key is no failure): for metrics.
	OnRoundTrip func(took time.Duration, failed bool)
}

// Client is a connection to Redis, shared by the Stores of any number of
// handlers. It is safe for concurrent use.
type Client struct {
	rdb    redis.UniversalClient
	prefix string
	grace  time.Duration
	recent *recent // records as this Client last saw them
	// do sends the flow's commands: rdb's auto-pipeliner, which sends the
	// commands of concurrent requests together (one write, one read for
	// many), or rdb itself.
	do redis.UniversalClient
}

// Open connects to Redis as opts say and checks the connection with PING.
func Open(ctx context.Context, opts Options) (*Client, error) {
	c, err := Connect(opts)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Connect checks opts and makes the client without talking to Redis yet:
// it fails only on a bad configuration, and a Redis that is down now is
// reached once it is back. Ping says whether it is up.
func Connect(opts Options) (*Client, error) {
	uo, err := opts.universal()
	if err != nil {
		return nil, err
	}
	c := &Client{rdb: redis.NewUniversalClient(uo), prefix: opts.KeyPrefix, grace: opts.Grace, recent: newRecent(opts.RecentRecords)}
	if c.prefix == "" {
		c.prefix = DefaultKeyPrefix
	}
	if c.grace <= 0 {
		c.grace = DefaultGrace
	}
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		cc.AddHook(followFailover{cc})
	}
	if opts.OnRoundTrip != nil {
		c.rdb.AddHook(timing{report: opts.OnRoundTrip})
	}
	// Auto-pipelining (go-redis's own; marked experimental there, and
	// pinned with go.mod): what a poll costs is mostly the system calls of
	// its round trip, on both sides, and sending the commands of
	// concurrent requests in one write, and reading their answers in one
	// read, shares those. Each command is still the same command, atomic
	// on its own: nothing a device sees depends on it (the tests run every
	// path through it). docs/performance.md has the figures.
	ap, err := c.rdb.AutoPipeline()
	if err != nil {
		c.rdb.Close()
		return nil, fmt.Errorf("redisstore: auto-pipelining: %w", err)
	}
	c.do = ap
	return c, nil
}

// Ping checks that Redis answers; the error wraps flow.ErrUnavailable.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("connect", err)
	}
	return nil
}

// Redis returns the underlying go-redis client.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Close closes the connections to Redis; the Stores made from c stop
// working.
func (c *Client) Close() error { return c.rdb.Close() }

// Store returns the flow.Store of one handler, named by namespace: every
// key it uses carries a hash of namespace (see the package documentation).
func (c *Client) Store(namespace string) *Store {
	id := flow.NamespaceID(namespace)
	ns := hex.EncodeToString(id[:])
	return &Store{c: c, ns: ns, prefix: c.prefix + ns + ":"}
}

// Store is one namespace's flow.Store on a Client. It is safe for
// concurrent use.
type Store struct {
	c      *Client
	ns     string // the namespace's hash, 16 hex digits
	prefix string // the Client's prefix, ns and ":"
}

var _ flow.Store = (*Store)(nil)

// universal builds the go-redis options.
func (o Options) universal() (*redis.UniversalOptions, error) {
	uo := &redis.UniversalOptions{}
	if o.URL != "" {
		parsed, err := ParseURL(o.URL)
		if err != nil {
			return nil, err
		}
		uo = parsed
	}
	if len(o.Addrs) > 0 {
		uo.Addrs = append([]string(nil), o.Addrs...)
	}
	if len(uo.Addrs) == 0 {
		return nil, errors.New("redisstore: no address: set URL or Addrs")
	}
	if o.Cluster {
		uo.IsClusterMode = true
	}
	if o.MasterName != "" {
		uo.MasterName = o.MasterName
	}
	if o.Username != "" {
		uo.Username = o.Username
	}
	if o.Password != "" {
		uo.Password = o.Password
	}
	if o.DB != 0 {
		uo.DB = o.DB
	}
	if o.TLS != nil {
		uo.TLSConfig = o.TLS
	}
	if o.DialTimeout != 0 {
		uo.DialTimeout = o.DialTimeout
	}
	if o.ReadTimeout != 0 {
		uo.ReadTimeout = o.ReadTimeout
	}
	if o.WriteTimeout != 0 {
		uo.WriteTimeout = o.WriteTimeout
	}
	if o.PoolSize != 0 {
		uo.PoolSize = o.PoolSize
	}
	if o.MaxRetries != 0 {
		uo.MaxRetries = o.MaxRetries
	}
	if (len(uo.Addrs) > 1 || uo.IsClusterMode) && uo.MasterName == "" && uo.DB != 0 {
		return nil, fmt.Errorf("redisstore: a Redis Cluster has only database 0, not %d", uo.DB)
	}
	if o.EvictionWarning != nil {
		uo.OnConnect = (&evictionCheck{warn: o.EvictionWarning}).onConnect
	}
	// go-redis retries a failed command (MaxRetries) and, by default,
	// each dial within it five times more; while Redis is down that keeps
	// a request from its 503 for many dial timeouts. One dial per command
	// attempt is enough.
	uo.DialerRetries = 1
	return uo, nil
}

// ParseURL reads where Redis is:
//
//   - one redis:// or rediss:// (TLS) URL, with optional user, password,
//     database number as the path and go-redis's query options
//     (redis://:secret@10.0.0.5:6379/2?dial_timeout=2s): one server. With
//     addr= query parameters (redis://a:6379?addr=b:6379&addr=c:6379) it
//     is a cluster seed list instead (go-redis's ParseClusterURL);
//   - host:port addresses separated by commas or spaces
//     ("10.0.0.5:6379, 10.0.0.6:6379"): one server when there is one, a
//     Redis Cluster when there are more.
func ParseURL(s string) (*redis.UniversalOptions, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("redisstore: empty Redis address")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("redisstore: bad Redis URL: %w", err)
		}
		if u.Query().Has("addr") {
			co, err := redis.ParseClusterURL(s)
			if err != nil {
				return nil, fmt.Errorf("redisstore: bad Redis cluster URL: %w", err)
			}
			uo := universalFrom(co)
			uo.IsClusterMode = true
			return uo, nil
		}
		o, err := redis.ParseURL(s)
		if err != nil {
			return nil, fmt.Errorf("redisstore: bad Redis URL: %w", err)
		}
		if o.Network != "tcp" {
			return nil, fmt.Errorf("redisstore: Redis URL %q: only redis:// and rediss:// are supported", u.Redacted())
		}
		uo := universalFrom(o)
		uo.Addrs = []string{o.Addr}
		return uo, nil
	}
	addrs := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	for _, a := range addrs {
		if err := CheckAddress(a); err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
	}
	return &redis.UniversalOptions{Addrs: addrs}, nil
}

// CheckAddress accepts host:port.
func CheckAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("address %q is not host:port", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: %q is not a port number", a, port)
	}
	return nil
}

// universalFrom carries what go-redis's URL parsing set (o: its *Options
// or *ClusterOptions) into the UniversalOptions field of the same name
// and type, so that an option go-redis learns to read from a URL is
// never dropped on the way. The address is the one field by another
// name (Addr, Addrs): the caller sets it.
func universalFrom(o any) *redis.UniversalOptions {
	uo := &redis.UniversalOptions{}
	dst, src := reflect.ValueOf(uo).Elem(), reflect.ValueOf(o).Elem()
	for i := range src.NumField() {
		f := src.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		if d := dst.FieldByName(f.Name); d.IsValid() && d.Type() == f.Type && d.CanSet() {
			d.Set(src.Field(i))
		}
	}
	return uo
}

// ---- keys ----

func (s *Store) deviceKey(userCode string) string { return s.prefix + "dev:{" + userCode + "}" }
func (s *Store) loginKey(key string) string       { return s.prefix + "login:{" + key + "}" }
func (s *Store) secretKey(name string) string     { return s.prefix + "secret:{" + name + "}" }

// counterKey: a namespace's counters share one hash tag, the namespace's
// hash, so that one Lua script can step through those of a Tally on a
// Cluster too (all in one slot).
func (s *Store) counterKey(key string) string { return s.counterPrefix() + key }
func (s *Store) counterPrefix() string        { return s.prefix + "hit:{" + s.ns + "}:" }

// ---- errors ----

// unavailable marks a Redis failure as flow.ErrUnavailable, keeping the
// cause reachable.
func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, flow.ErrUnavailable, err)
}

// ---- secrets ----

// Secret reads the secret, or stores a generated one with SET NX and reads
// back whichever value won.
func (s *Store) Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	k := s.secretKey(name)
	v, err := s.c.do.Get(ctx, k).Bytes()
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, redis.Nil) {
		return nil, unavailable("secret", err)
	}
	gen, err := generate()
	if err != nil {
		return nil, fmt.Errorf("redisstore: generating secret %q: %w", name, err)
	}
	if len(gen) == 0 {
		return nil, fmt.Errorf("redisstore: generating secret %q: empty secret", name)
	}
	if err := s.c.do.SetNX(ctx, k, gen, 0).Err(); err != nil {
		return nil, unavailable("secret", err)
	}
	v, err = s.c.do.Get(ctx, k).Bytes()
	if err != nil { // redis.Nil too: someone deleted it in between
		return nil, unavailable("secret", err)
	}
	return v, nil
}
