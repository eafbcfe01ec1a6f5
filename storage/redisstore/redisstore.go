// Package redisstore keeps the device flow's state (flow.Store) in Redis, so
// that several instances behind one load balancer share it. It speaks to
// one Redis or Valkey server, a Sentinel-managed primary, or a Redis
// Cluster, through go-redis's UniversalClient.
//
// # Keys
//
// Every key starts with Options.KeyPrefix (default "df:") and carries a
// hash tag, so that all keys one Lua script touches live in one cluster
// slot:
//
//	<prefix>dev:{<device id>}   the device record (JSON), until ExpiresAt + Grace
//	<prefix>uc:{<user code>}    the user code index: the device id holding it
//	<prefix>login:{<key>}       a browser login (JSON), until its ExpiresAt
//	<prefix>hit:{<key>}         a counter, until ttl after its first hit
//	<prefix>secret:{<name>}     a server secret, forever
//
// A prefix that itself contains a hash tag ("{df}:") puts every key in one
// slot; that works too, but on a cluster it forgoes spreading the load.
//
// # Device record and user code index
//
// A device record and its user code index have different hash tags (one is
// looked up by device id, the other by user code), so on a cluster no
// single script or transaction can touch both. They are therefore changed
// in steps, in an order that keeps the one invariant that matters, "at most
// one live record holds a user code":
//
//   - CreateDevice first claims the index with SET NX, then writes the
//     record with SET NX. Only the winner of the SET NX writes a record, so
//     two records never share a code. If writing the record fails, the
//     index is released again (compare-and-delete, so only our own claim).
//   - Deleting (UpdateDevice's Delete verdict) removes the record first,
//     then releases the index by compare-and-delete.
//
// Both keys expire at the same absolute time, so neither outlives the
// other. A deadline already in the past simply drops the key. Within the
// grace period DeviceByUserCode and UpdateDevice still return a record
// whose ExpiresAt has passed; callers compare ExpiresAt themselves (a late
// poll is answered expired_token).
//
// A crash between the steps leaves at worst an index entry that points to
// no record. It is harmless: DeviceByUserCode treats it as not found, it
// only keeps that one user code (of billions) from being drawn again, and
// it expires with the TTL the record would have had. The reverse, a record
// without its index, arises only if a Save moves ExpiresAt later and the
// follow-up that moves the index's expiry fails; then the index may lapse
// first. Even so DeviceByUserCode never returns a wrong record (it checks
// the record's user code) and releases are compare-and-delete, so another
// authorization's claim on the code is never removed.
//
// # Updates
//
// UpdateDevice is optimistic: it reads the record, runs fn on a copy, and
// applies the verdict with a Lua compare-and-swap that succeeds only if the
// record is still byte for byte what fn saw; otherwise it reads again and
// calls fn again, with a short random back-off, at most MaxAttempts times.
// The comparison is on the full value, so an interleaved change that left
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
	"crypto/tls"
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
	// several deployments can share one Redis.
	KeyPrefix string
	// Grace is how long a device record is kept after its ExpiresAt
	// (default DefaultGrace).
	Grace time.Duration

	// Configure, when set, is called last on the client options, for
	// settings not covered above.
	Configure func(*redis.UniversalOptions)
}

// Store is a flow.Store on Redis. It is safe for concurrent use.
type Store struct {
	client redis.UniversalClient
	prefix string
	grace  time.Duration
}

var _ flow.Store = (*Store)(nil)

// Open connects to Redis as opts say and checks the connection with PING.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := Connect(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect checks opts and makes the client without talking to Redis yet:
// it fails only on a bad configuration, and a Redis that is down now is
// reached once it is back. Ping says whether it is up.
func Connect(opts Options) (*Store, error) {
	uo, err := opts.universal()
	if err != nil {
		return nil, err
	}
	return New(redis.NewUniversalClient(uo), opts.KeyPrefix, opts.Grace), nil
}

// Ping checks that Redis answers; the error wraps flow.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable("connect", err)
	}
	return nil
}

// New wraps a client the caller made. Empty prefix and zero grace take the
// defaults. Close closes the client.
func New(client redis.UniversalClient, prefix string, grace time.Duration) *Store {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &Store{client: client, prefix: prefix, grace: grace}
}

// Client returns the underlying client.
func (s *Store) Client() redis.UniversalClient { return s.client }

// Grace returns how long device records outlive their ExpiresAt.
func (s *Store) Grace() time.Duration { return s.grace }

// Close closes the connections to Redis.
func (s *Store) Close() error { return s.client.Close() }

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

func (s *Store) deviceKey(id string) string     { return s.prefix + "dev:{" + id + "}" }
func (s *Store) userCodeKey(code string) string { return s.prefix + "uc:{" + code + "}" }
func (s *Store) loginKey(key string) string     { return s.prefix + "login:{" + key + "}" }
func (s *Store) hitKey(key string) string       { return s.prefix + "hit:{" + key + "}" }
func (s *Store) secretKey(name string) string   { return s.prefix + "secret:{" + name + "}" }

// ---- errors ----

// unavailable marks a Redis failure as flow.ErrUnavailable, keeping the
// cause reachable.
func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, flow.ErrUnavailable, err)
}

// ---- scripts ----

// compareAndSwap replaces (or, with an empty new value, deletes) KEYS[1]
// only if it still holds ARGV[1]. ARGV[3] is the absolute expiry in unix
// milliseconds.
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

// compareAndDelete deletes KEYS[1] only if it holds ARGV[1].
var compareAndDelete = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// compareAndExpire sets KEYS[1]'s absolute expiry ARGV[2] (unix ms) only if
// it holds ARGV[1].
var compareAndExpire = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
return 0
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

// deadline is when a device record and its index expire, as unix ms.
func (s *Store) deadline(rec *flow.Device) int64 {
	return rec.ExpiresAt.Add(s.grace).UnixMilli()
}

// cleanupContext outlives a cancelled request context for a short
// compensating step.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
}

// CreateDevice claims the user code, then writes the record; see the
// package documentation for why in that order.
func (s *Store) CreateDevice(ctx context.Context, rec *flow.Device) error {
	if rec.ID == "" || rec.UserCode == "" || rec.ExpiresAt.IsZero() {
		return errors.New("redisstore: CreateDevice: record needs an ID, a user code and ExpiresAt")
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("redisstore: encoding device: %w", err)
	}
	at := time.UnixMilli(s.deadline(rec))
	ucKey := s.userCodeKey(rec.UserCode)

	ok, err := s.setNX(ctx, ucKey, rec.ID, at)
	if err != nil {
		return unavailable("create device: claim user code", err)
	}
	if !ok {
		return flow.ErrUserCodeTaken
	}

	ok, err = s.setNX(ctx, s.deviceKey(rec.ID), data, at)
	if err == nil && ok {
		return nil
	}
	// Release our claim on the user code; if even that fails, the orphaned
	// index entry is harmless (see the package documentation).
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	compareAndDelete.Run(cctx, s.client, []string{ucKey}, rec.ID)
	if err != nil {
		return unavailable("create device: write record", err)
	}
	return fmt.Errorf("redisstore: CreateDevice: a device with ID %q already exists", rec.ID)
}

// setNX is SET key value NX PXAT at; it reports whether the key was set.
func (s *Store) setNX(ctx context.Context, key string, value any, at time.Time) (bool, error) {
	err := s.client.SetArgs(ctx, key, value, redis.SetArgs{Mode: "NX", ExpireAt: at}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

// DeviceByUserCode follows the user code index to the record.
func (s *Store) DeviceByUserCode(ctx context.Context, userCode string) (*flow.Device, error) {
	id, err := s.client.Get(ctx, s.userCodeKey(userCode)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, flow.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("device by user code", err)
	}
	rec, _, err := s.getDevice(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil || rec.UserCode != userCode {
		return nil, flow.ErrNotFound // an orphaned index entry
	}
	return rec, nil
}

// getDevice reads and decodes a record; nil when there is none. raw is the
// stored value, for compare-and-swap.
func (s *Store) getDevice(ctx context.Context, id string) (rec *flow.Device, raw string, err error) {
	raw, err = s.client.Get(ctx, s.deviceKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", unavailable("read device", err)
	}
	rec = new(flow.Device)
	if err := json.Unmarshal([]byte(raw), rec); err != nil {
		return nil, "", fmt.Errorf("redisstore: decoding device %q: %w", id, err)
	}
	return rec, raw, nil
}

// UpdateDevice reads, calls fn, and applies its verdict by compare-and-swap,
// retrying on conflict.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*flow.Device) (flow.Verdict, error)) error {
	for attempt := 0; attempt < MaxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return unavailable("update device", err)
			}
		}
		rec, raw, err := s.getDevice(ctx, id)
		if err != nil {
			return err
		}
		var (
			userCode  string
			expiresAt time.Time
		)
		if rec != nil {
			userCode, expiresAt = rec.UserCode, rec.ExpiresAt
		}
		verdict, fnErr := fn(rec)
		if rec == nil || verdict == flow.Keep {
			return fnErr // nothing to write
		}

		var (
			newRaw   string
			deadline int64
		)
		switch verdict {
		case flow.Save:
			if rec.ID != id || rec.UserCode != userCode || rec.ExpiresAt.IsZero() {
				return errors.New("redisstore: UpdateDevice: fn must not change ID or UserCode, nor clear ExpiresAt")
			}
			b, err := json.Marshal(rec)
			if err != nil {
				return fmt.Errorf("redisstore: encoding device: %w", err)
			}
			newRaw = string(b)
			deadline = s.deadline(rec)
		case flow.Delete:
			// newRaw stays empty: delete
		default:
			return fmt.Errorf("redisstore: UpdateDevice: unknown verdict %d", verdict)
		}

		swapped, err := compareAndSwap.Run(ctx, s.client, []string{s.deviceKey(id)}, raw, newRaw, deadline).Int()
		if err != nil {
			return unavailable("update device", err)
		}
		if swapped == 0 {
			continue // someone else wrote in between: call fn again
		}

		// The verdict is applied. Follow-up steps on the user code index
		// are best effort: when they fail, the index entry merely outlives
		// the record (harmless, see the package documentation), and
		// reporting an error would hide that the verdict took effect.
		ucKey := s.userCodeKey(userCode)
		switch {
		case verdict == flow.Delete:
			cctx, cancel := cleanupContext(ctx)
			compareAndDelete.Run(cctx, s.client, []string{ucKey}, id)
			cancel()
		case !rec.ExpiresAt.Equal(expiresAt):
			// ExpiresAt changed: move the index's expiry along.
			cctx, cancel := cleanupContext(ctx)
			compareAndExpire.Run(cctx, s.client, []string{ucKey}, id, deadline)
			cancel()
		}
		return fnErr
	}
	return unavailable("update device", fmt.Errorf("record %q still changing after %d attempts", id, MaxAttempts))
}

// backoff waits a little, growing with attempt and jittered so that
// contending writers spread out.
func backoff(ctx context.Context, attempt int) error {
	limit := time.Duration(min(attempt, 10)) * 500 * time.Microsecond
	d := time.Duration(rand.Int64N(int64(limit) + 1))
	t := time.NewTimer(d)
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
		err = s.client.Del(ctx, k).Err()
	} else {
		err = s.client.SetArgs(ctx, k, data, redis.SetArgs{ExpireAt: login.ExpiresAt}).Err()
	}
	if err != nil {
		return unavailable("put login", err)
	}
	return nil
}

// TakeLogin is GETDEL: the login is returned once.
func (s *Store) TakeLogin(ctx context.Context, key string) (*flow.Login, error) {
	data, err := s.client.GetDel(ctx, s.loginKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, flow.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("take login", err)
	}
	var l flow.Login
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("redisstore: decoding login: %w", err)
	}
	return &l, nil
}

// ---- counters ----

// Hit increments the counter; the first hit starts its TTL.
func (s *Store) Hit(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	n, err := hit.Run(ctx, s.client, []string{s.hitKey(key)}, ms).Int64()
	if err != nil {
		return 0, unavailable("hit", err)
	}
	return n, nil
}

// Count reads the counter.
func (s *Store) Count(ctx context.Context, key string) (int64, error) {
	n, err := s.client.Get(ctx, s.hitKey(key)).Int64()
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
	v, err := s.client.Get(ctx, k).Bytes()
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
	if err := s.client.SetNX(ctx, k, gen, 0).Err(); err != nil {
		return nil, unavailable("secret", err)
	}
	v, err = s.client.Get(ctx, k).Bytes()
	if err != nil { // redis.Nil too: someone deleted it in between
		return nil, unavailable("secret", err)
	}
	return v, nil
}
