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
//	<prefix><ns>:dev:{<user code>}  a device record (JSON), until ExpiresAt + Grace
//	<prefix><ns>:login:{<key>}      a browser login (JSON), until its ExpiresAt
//	<prefix><ns>:hit:{<key>}        a counter, until ttl after its first hit
//	<prefix><ns>:secret:{<name>}    a server secret, forever
//
// Every command and script touches a single key, so all of this works on a
// Redis Cluster as it is. The braces are hash tags; a prefix that holds one
// itself ("{df}:") puts every key in one slot, which works too but forgoes
// spreading the load over the cluster.
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
// UpdateDevice is optimistic: it reads the record, runs fn on it, and
// applies the verdict with a Lua compare-and-swap that succeeds only if the
// key still holds byte for byte what fn saw; otherwise it reads again and
// calls fn again, after a short random back-off, at most MaxAttempts times.
// The comparison is on the full value, so an interleaved write that left
// the record identical is not a conflict: fn's verdict depends only on the
// record it was handed.
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
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
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

	// EvictionWarning, when set, is called when a Redis server this
	// client connects to may evict keys (see eviction.go), once per
	// server and policy.
	EvictionWarning func(addr, policy string)

	// Configure, when set, is called last on the client options, for
	// settings not covered above.
	Configure func(*redis.UniversalOptions)
}

// Client is a connection to Redis, shared by the Stores of any number of
// handlers. It is safe for concurrent use.
type Client struct {
	rdb    redis.UniversalClient
	prefix string
	grace  time.Duration
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
	c := &Client{rdb: redis.NewUniversalClient(uo), prefix: opts.KeyPrefix, grace: opts.Grace}
	if c.prefix == "" {
		c.prefix = DefaultKeyPrefix
	}
	if c.grace <= 0 {
		c.grace = DefaultGrace
	}
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
	sum := sha256.Sum256([]byte(namespace))
	return &Store{c: c, prefix: c.prefix + hex.EncodeToString(sum[:8]) + ":"}
}

// Store is one namespace's flow.Store on a Client. It is safe for
// concurrent use.
type Store struct {
	c      *Client
	prefix string // the Client's prefix and the namespace hash
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
	if o.Configure != nil {
		o.Configure(uo)
	}
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
			return &redis.UniversalOptions{
				Addrs:           co.Addrs,
				IsClusterMode:   true,
				Username:        co.Username,
				Password:        co.Password,
				TLSConfig:       co.TLSConfig,
				ClientName:      co.ClientName,
				MaxRetries:      co.MaxRetries,
				MinRetryBackoff: co.MinRetryBackoff,
				MaxRetryBackoff: co.MaxRetryBackoff,
				DialTimeout:     co.DialTimeout,
				ReadTimeout:     co.ReadTimeout,
				WriteTimeout:    co.WriteTimeout,
				PoolFIFO:        co.PoolFIFO,
				PoolSize:        co.PoolSize,
				PoolTimeout:     co.PoolTimeout,
				MinIdleConns:    co.MinIdleConns,
				MaxIdleConns:    co.MaxIdleConns,
				MaxActiveConns:  co.MaxActiveConns,
				ConnMaxIdleTime: co.ConnMaxIdleTime,
				ConnMaxLifetime: co.ConnMaxLifetime,
				MaxRedirects:    co.MaxRedirects,
				ReadOnly:        co.ReadOnly,
				RouteByLatency:  co.RouteByLatency,
				RouteRandomly:   co.RouteRandomly,
			}, nil
		}
		o, err := redis.ParseURL(s)
		if err != nil {
			return nil, fmt.Errorf("redisstore: bad Redis URL: %w", err)
		}
		if o.Network != "tcp" {
			return nil, fmt.Errorf("redisstore: Redis URL %q: only redis:// and rediss:// are supported", u.Redacted())
		}
		return &redis.UniversalOptions{
			Addrs:           []string{o.Addr},
			DB:              o.DB,
			Username:        o.Username,
			Password:        o.Password,
			TLSConfig:       o.TLSConfig,
			ClientName:      o.ClientName,
			Protocol:        o.Protocol,
			MaxRetries:      o.MaxRetries,
			MinRetryBackoff: o.MinRetryBackoff,
			MaxRetryBackoff: o.MaxRetryBackoff,
			DialTimeout:     o.DialTimeout,
			ReadTimeout:     o.ReadTimeout,
			WriteTimeout:    o.WriteTimeout,
			PoolFIFO:        o.PoolFIFO,
			PoolSize:        o.PoolSize,
			PoolTimeout:     o.PoolTimeout,
			MinIdleConns:    o.MinIdleConns,
			MaxIdleConns:    o.MaxIdleConns,
			MaxActiveConns:  o.MaxActiveConns,
			ConnMaxIdleTime: o.ConnMaxIdleTime,
			ConnMaxLifetime: o.ConnMaxLifetime,
		}, nil
	}
	addrs := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %q is neither a redis:// URL nor host:port: %w", a, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 || host == "" {
			return nil, fmt.Errorf("redisstore: bad address %q", a)
		}
	}
	return &redis.UniversalOptions{Addrs: addrs}, nil
}

// ---- keys ----

func (s *Store) deviceKey(userCode string) string { return s.prefix + "dev:{" + userCode + "}" }
func (s *Store) loginKey(key string) string       { return s.prefix + "login:{" + key + "}" }
func (s *Store) hitKey(key string) string         { return s.prefix + "hit:{" + key + "}" }
func (s *Store) secretKey(name string) string     { return s.prefix + "secret:{" + name + "}" }

// ---- errors ----

// unavailable marks a Redis failure as flow.ErrUnavailable, keeping the
// cause reachable.
func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, flow.ErrUnavailable, err)
}

// ---- scripts ----
//
// redis.NewScript runs a script by its SHA (EVALSHA) and sends the source
// only when the server does not know it yet.

// compareAndSwap replaces KEYS[1] with ARGV[2], expiring at ARGV[3] (unix
// ms), or deletes it when ARGV[2] is empty; only if it still holds ARGV[1].
// It returns 1 when it did, 0 when the key held something else.
var compareAndSwap = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
if ARGV[2] == '' then
	redis.call('DEL', KEYS[1])
else
	redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
`)

// hit increments KEYS[1] and gives it a TTL of ARGV[1] ms on the first hit
// (or whenever it has none, should one ever lack it).
var hit = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) == -1 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// ---- devices ----

// deadline is when a device record expires, as unix ms.
func (s *Store) deadline(d *flow.Device) int64 {
	return d.ExpiresAt.Add(s.c.grace).UnixMilli()
}

// CreateDevice stores the record under its user code with SET NX.
func (s *Store) CreateDevice(ctx context.Context, d *flow.Device) error {
	if d.UserCode == "" || d.ExpiresAt.IsZero() {
		return errors.New("redisstore: CreateDevice: record needs a user code and ExpiresAt")
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("redisstore: encoding device: %w", err)
	}
	args := redis.SetArgs{Mode: "NX", ExpireAt: time.UnixMilli(s.deadline(d))}
	err = s.c.rdb.SetArgs(ctx, s.deviceKey(d.UserCode), data, args).Err()
	if errors.Is(err, redis.Nil) {
		return flow.ErrUserCodeTaken
	}
	if err != nil {
		return unavailable("create device", err)
	}
	return nil
}

// DeviceByUserCode reads the record.
func (s *Store) DeviceByUserCode(ctx context.Context, userCode string) (*flow.Device, error) {
	d, _, err := s.getDevice(ctx, userCode)
	if err == nil && d == nil {
		err = flow.ErrNotFound
	}
	return d, err
}

// getDevice reads and decodes a record; nil when there is none. raw is the
// stored value, for compare-and-swap.
func (s *Store) getDevice(ctx context.Context, userCode string) (d *flow.Device, raw string, err error) {
	raw, err = s.c.rdb.Get(ctx, s.deviceKey(userCode)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", unavailable("read device", err)
	}
	d = new(flow.Device)
	if err := json.Unmarshal([]byte(raw), d); err != nil {
		return nil, "", fmt.Errorf("redisstore: decoding device %q: %w", userCode, err)
	}
	return d, raw, nil
}

// UpdateDevice reads, calls fn, and applies its verdict by compare-and-swap,
// calling fn again on conflict.
func (s *Store) UpdateDevice(ctx context.Context, userCode string, fn func(*flow.Device) (flow.Verdict, error)) error {
	for attempt := range MaxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return unavailable("update device", err)
			}
		}
		d, raw, err := s.getDevice(ctx, userCode)
		if err != nil {
			return err
		}
		verdict, fnErr := fn(d)
		if d == nil || verdict == flow.Keep {
			return fnErr // nothing to write
		}
		var newRaw string // empty: delete
		switch verdict {
		case flow.Save:
			if d.UserCode != userCode || d.ExpiresAt.IsZero() {
				return errors.New("redisstore: UpdateDevice: fn must not change UserCode nor clear ExpiresAt")
			}
			b, err := json.Marshal(d)
			if err != nil {
				return fmt.Errorf("redisstore: encoding device: %w", err)
			}
			newRaw = string(b)
		case flow.Delete:
		default:
			return fmt.Errorf("redisstore: UpdateDevice: unknown verdict %d", verdict)
		}
		swapped, err := compareAndSwap.Run(ctx, s.c.rdb, []string{s.deviceKey(userCode)}, raw, newRaw, s.deadline(d)).Int()
		if err != nil {
			return unavailable("update device", err)
		}
		if swapped == 1 {
			return fnErr
		}
		// Another writer got in between: read again and call fn again.
	}
	return unavailable("update device", fmt.Errorf("record %q still changing after %d attempts", userCode, MaxAttempts))
}

// backoff waits a little, growing with attempt and jittered so that
// contending writers spread out.
func backoff(ctx context.Context, attempt int) error {
	limit := time.Duration(min(attempt, 10)) * 500 * time.Microsecond
	t := time.NewTimer(time.Duration(rand.Int64N(int64(limit) + 1)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ---- logins ----

// PutLogin stores the login until its ExpiresAt.
func (s *Store) PutLogin(ctx context.Context, key string, login *flow.Login) error {
	data, err := json.Marshal(login)
	if err != nil {
		return fmt.Errorf("redisstore: encoding login: %w", err)
	}
	k := s.loginKey(key)
	if !login.ExpiresAt.After(time.Now()) {
		// Already expired: store nothing (and drop what was there).
		err = s.c.rdb.Del(ctx, k).Err()
	} else {
		err = s.c.rdb.SetArgs(ctx, k, data, redis.SetArgs{ExpireAt: login.ExpiresAt}).Err()
	}
	if err != nil {
		return unavailable("put login", err)
	}
	return nil
}

// TakeLogin reads the login and deletes it with a compare-and-swap, only
// if it holds the state given: the login is returned once.
func (s *Store) TakeLogin(ctx context.Context, key, state string) (*flow.Login, error) {
	k := s.loginKey(key)
	for range MaxAttempts {
		data, err := s.c.rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			return nil, flow.ErrNotFound
		}
		if err != nil {
			return nil, unavailable("take login", err)
		}
		var l flow.Login
		if err := json.Unmarshal([]byte(data), &l); err != nil {
			return nil, fmt.Errorf("%w: redisstore: decoding login: %w", flow.ErrUnavailable, err)
		}
		if subtle.ConstantTimeCompare([]byte(l.State), []byte(state)) != 1 {
			return nil, flow.ErrNotFound // not its state: left as it is
		}
		taken, err := compareAndSwap.Run(ctx, s.c.rdb, []string{k}, data, "", 0).Int()
		if err != nil {
			return nil, unavailable("take login", err)
		}
		if taken == 1 {
			return &l, nil
		}
		// Replaced or taken in between: look again.
	}
	return nil, unavailable("take login", fmt.Errorf("login still changing after %d attempts", MaxAttempts))
}

// ---- counters ----

// Hit increments the counter; the first hit starts its TTL.
func (s *Store) Hit(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	n, err := hit.Run(ctx, s.c.rdb, []string{s.hitKey(key)}, ms).Int64()
	if err != nil {
		return 0, unavailable("hit", err)
	}
	return n, nil
}

// Count reads the counter.
func (s *Store) Count(ctx context.Context, key string) (int64, error) {
	n, err := s.c.rdb.Get(ctx, s.hitKey(key)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("count", err)
	}
	return n, nil
}

// ---- secrets ----

// Secret reads the secret, or stores a generated one with SET NX and reads
// back whichever value won.
func (s *Store) Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	k := s.secretKey(name)
	v, err := s.c.rdb.Get(ctx, k).Bytes()
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
	if err := s.c.rdb.SetNX(ctx, k, gen, 0).Err(); err != nil {
		return nil, unavailable("secret", err)
	}
	v, err = s.c.rdb.Get(ctx, k).Bytes()
	if err != nil { // redis.Nil too: someone deleted it in between
		return nil, unavailable("secret", err)
	}
	return v, nil
}
