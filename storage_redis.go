package deviceflow

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
)

func init() {
	caddy.RegisterModule(RedisStorage{})
}

// redisPool holds each Redis client across config reloads, keyed by the
// resolved connection settings: a reload that keeps them reuses the open
// connections, and the old config's Cleanup does not close them under the
// new one.
var redisPool = caddy.NewUsagePool()

// redisPingTimeout bounds the reachability check in Provision, so that a
// Redis that does not answer delays a start or reload only briefly.
const redisPingTimeout = 3 * time.Second

// RedisStorage keeps codes in Redis (or Valkey, a Sentinel-managed primary,
// or a Redis Cluster), so that several Caddy instances behind one name
// share them: a device may poll one instance while the person approves on
// another. Every text field may hold {env.*} placeholders, resolved in
// Provision, so a password need not be written into the config.
type RedisStorage struct {
	// URL is one redis:// or rediss:// (TLS) URL with optional user,
	// password and database number (redis://:secret@10.0.0.5:6379/2), or
	// host:port addresses separated by commas (several: a Redis Cluster).
	URL string `json:"url,omitempty"`
	// Addresses are host:port addresses: one server, or the seed nodes of
	// a Redis Cluster when there are several (or Cluster is set), or the
	// sentinels when MasterName is set. Give URL or Addresses, not both.
	Addresses []string `json:"addresses,omitempty"`
	// Cluster treats a single address as a cluster entry point (such as a
	// managed service's configuration endpoint).
	Cluster bool `json:"cluster,omitempty"`
	// MasterName is the Sentinel-managed primary's name; the addresses
	// are then the sentinels'.
	MasterName string `json:"master_name,omitempty"`

	// Username is the Redis ACL user; it overrides the URL's.
	Username string `json:"username,omitempty"`
	// Password overrides the URL's; {env.REDIS_PASSWORD} keeps it out of
	// the config.
	Password string `json:"password,omitempty"`
	// TLS turns on TLS for addresses (a rediss:// URL does by itself).
	TLS bool `json:"tls,omitempty"`

	// KeyPrefix starts every key (default "df:"). Every instance of one
	// site must use the same prefix. Different handlers may share one: each
	// has its own records under it (see Handler.Name).
	KeyPrefix string `json:"key_prefix,omitempty"`

	// DialTimeout bounds connecting to Redis. Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// ReadTimeout bounds waiting for a reply. Default: 3s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`
	// WriteTimeout bounds sending a command. Default: 3s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// PoolSize is the most connections kept per node. Default: 10 per
	// CPU.
	PoolSize int `json:"pool_size,omitempty"`

	key    string
	client *redisstore.Client
}

// CaddyModule returns the Caddy module information.
func (RedisStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.device_flow.storage.redis",
		New: func() caddy.Module { return new(RedisStorage) },
	}
}

// Provision resolves placeholders, checks the settings and takes a client
// from the pool (making one the first time).
//
// Only a configuration that cannot work fails here (a malformed URL, URL
// and addresses both given, a cluster with a database number), so `caddy
// validate` and `caddy start` catch it. A Redis that is merely unreachable
// does not: it is logged, and the endpoints answer 503 with Retry-After
// until Redis is back. Failing would turn a Redis outage into a Caddy
// outage for every other site in the same config, and would keep Caddy
// down after Redis recovers; with several instances, one Redis blip at
// boot would otherwise take out the whole fleet. (The device flow's
// server secret is likewise read from Redis once it answers, never made
// locally, so every instance still shares it.)
func (r *RedisStorage) Provision(ctx caddy.Context) error {
	opts, err := r.options()
	if err != nil {
		return err
	}
	key := r.poolKey()
	logger := ctx.Logger()
	// Pending codes and the server secret must not be evicted: every
	// connection reads the server's policy (at start, and after a
	// reconnect or failover) and a risky one is logged.
	opts.EvictionWarning = func(server, policy string) {
		logger.Warn("Redis may evict the device flow's keys; set maxmemory-policy noeviction",
			zap.String("server", server), zap.String("maxmemory_policy", policy))
	}
	registerStorageMetrics(ctx, logger)
	opts.OnRoundTrip = redisMetrics().roundTrip
	val, loaded, err := redisPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		c, err := redisstore.Connect(opts)
		if err != nil {
			return nil, r.redact(err)
		}
		return redisDestructor{c}, nil
	})
	if err != nil {
		return fmt.Errorf("storage redis: %v", err)
	}
	r.key, r.client = key, val.(redisDestructor).Client
	if !loaded {
		pctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
		defer cancel()
		if err := r.client.Ping(pctx); err != nil {
			logger.Error("Redis is unreachable; the device flow answers 503 until it is back",
				zap.Strings("addresses", r.where()), zap.Error(r.redact(err)))
		} else {
			logger.Info("connected to Redis", zap.Strings("addresses", r.where()))
		}
	}
	return nil
}

// options resolves placeholders and checks the settings.
func (r *RedisStorage) options() (redisstore.Options, error) {
	repl := caddy.NewReplacer()
	if u := r.URL; u != "" {
		if r.URL = repl.ReplaceKnown(u, ""); r.URL == "" {
			return redisstore.Options{}, fmt.Errorf("storage redis: url %s is empty; is the environment variable set?", u)
		}
	}
	for _, field := range []*string{&r.MasterName, &r.Username, &r.Password, &r.KeyPrefix} {
		*field = repl.ReplaceKnown(*field, "")
	}
	addrs := make([]string, 0, len(r.Addresses))
	for _, a := range r.Addresses {
		if resolved := repl.ReplaceKnown(a, ""); resolved != "" {
			addrs = append(addrs, resolved)
		}
	}
	r.Addresses = addrs
	if err := r.check(); err != nil {
		return redisstore.Options{}, fmt.Errorf("storage redis: %v", err)
	}
	opts := redisstore.Options{
		URL:          r.URL,
		Addrs:        r.Addresses,
		Cluster:      r.Cluster,
		MasterName:   r.MasterName,
		Username:     r.Username,
		Password:     r.Password,
		KeyPrefix:    r.KeyPrefix,
		DialTimeout:  time.Duration(r.DialTimeout),
		ReadTimeout:  time.Duration(r.ReadTimeout),
		WriteTimeout: time.Duration(r.WriteTimeout),
		PoolSize:     r.PoolSize,
	}
	if r.TLS {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

// check finds what cannot work, with errors that never contain a password.
func (r *RedisStorage) check() error {
	switch {
	case r.URL == "" && len(r.Addresses) == 0:
		return errors.New("no Redis given: set url (redis://host:6379) or addresses (host:port ...)")
	case r.URL != "" && len(r.Addresses) > 0:
		return errors.New("give either url or addresses, not both")
	}
	if err := r.checkWhere(); err != nil {
		return err
	}
	if err := checkKeyPrefix(r.KeyPrefix); err != nil {
		return err
	}
	if r.PoolSize < 0 {
		return fmt.Errorf("pool_size must not be negative, not %d", r.PoolSize)
	}
	for name, d := range map[string]caddy.Duration{"dial_timeout": r.DialTimeout, "read_timeout": r.ReadTimeout, "write_timeout": r.WriteTimeout} {
		if d < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	return nil
}

// checkWhere checks the URL and addresses, unless a placeholder in them
// is still to be resolved.
func (r *RedisStorage) checkWhere() error {
	if r.URL != "" && !strings.Contains(r.URL, "{") {
		if _, err := redisstore.ParseURL(r.URL); err != nil {
			return r.redact(err)
		}
	}
	for _, a := range r.Addresses {
		if strings.Contains(a, "{") {
			continue
		}
		if err := redisstore.CheckAddress(a); err != nil {
			return err
		}
	}
	return nil
}

// checkKeyPrefix refuses white space, which the key layout does not allow.
func checkKeyPrefix(p string) error {
	if strings.ContainsAny(p, " \t\r\n") {
		return fmt.Errorf("key_prefix %q must not contain white space", p)
	}
	return nil
}

// redact removes the password (from the URL or the field) from an error
// that may quote the URL.
func (r *RedisStorage) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	secrets := []string{r.Password}
	if i, j := strings.Index(r.URL, "://"), strings.LastIndex(r.URL, "@"); i >= 0 && j > i+3 {
		userinfo := r.URL[i+3 : j]
		secrets = append(secrets, userinfo)
		if _, pw, ok := strings.Cut(userinfo, ":"); ok {
			secrets = append(secrets, pw)
		}
	}
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg, changed = strings.ReplaceAll(msg, s, "xxxxx"), true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

// where names the Redis for logs: addresses only, never the URL (which may
// hold a password).
func (r *RedisStorage) where() []string {
	if len(r.Addresses) > 0 {
		return r.Addresses
	}
	if o, err := redisstore.ParseURL(r.URL); err == nil {
		return o.Addrs
	}
	return nil
}

// poolKey identifies a client by every resolved setting that shapes it.
// It is a hash, so the password is not kept in yet another place in plain
// text.
func (r *RedisStorage) poolKey() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain fields only: cannot happen
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// storeIdentity names where the records are, for the check that two
// handlers on one store are apart (claimIdentity, namespace.go): the
// servers, the database and the key prefix, never a password.
func (r *RedisStorage) storeIdentity() string {
	db := 0
	if o, err := redisstore.ParseURL(r.URL); r.URL != "" && err == nil {
		db = o.DB
	}
	servers := strings.Join(slices.Sorted(slices.Values(r.where())), ",")
	if r.MasterName != "" {
		servers = r.MasterName + " via " + servers
	}
	return fmt.Sprintf("redis %s db %d key_prefix %q", servers, db, cmp.Or(r.KeyPrefix, redisstore.DefaultKeyPrefix))
}

// Store returns one handler's store on the shared connection.
func (r *RedisStorage) Store(namespace string) flow.Store { return r.client.Store(namespace) }

// Cleanup lets go of the client; the last user closes it. A second call
// does nothing.
func (r *RedisStorage) Cleanup() error {
	if r.key == "" {
		return nil
	}
	_, err := redisPool.Delete(r.key)
	r.key = ""
	return err
}

type redisDestructor struct{ *redisstore.Client }

func (d redisDestructor) Destruct() error { return d.Client.Close() }

// redisMetrics are the Redis store's round trips, for its capacity
// (docs/multi-instance.md). Like the handler's collectors (metrics.go),
// they are made once per process.
var redisMetrics = sync.OnceValue(func() redisCollectors {
	const ns, sub = "caddy", "device_flow"
	return redisCollectors{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "redis_duration_seconds",
			Help:      "Time taken by each round trip to Redis (a command or a script, sent and answered); a request of the flow makes one in the common case.",
			Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "redis_errors_total",
			Help:      "Round trips to Redis that failed (unreachable, timeout, CLUSTERDOWN, READONLY, OOM, ...); each makes a request of the flow answer 503.",
		}),
	}
})

type redisCollectors struct {
	duration prometheus.Histogram
	errors   prometheus.Counter
}

func (m redisCollectors) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.duration, m.errors}
}

// roundTrip is the redisstore.Options.OnRoundTrip that feeds them.
func (m redisCollectors) roundTrip(took time.Duration, failed bool) {
	m.duration.Observe(took.Seconds())
	if failed {
		m.errors.Inc()
	}
}

// UnmarshalCaddyfile reads the storage line of device_flow:
//
//	storage redis <url>                    # redis://, rediss:// or {env.REDIS_URL}
//	storage redis <host:port> <host:port>  # several: a Redis Cluster
//	storage redis <url>|<host:port...> {
//		key_prefix    <prefix>     # default df:; the same on every instance
//		username      <user>
//		password      <password>   # {env.REDIS_PASSWORD} keeps it out of the file
//		tls                        # TLS for host:port addresses (rediss:// has it)
//		cluster                    # one address that is a cluster entry point
//		master_name   <name>       # Sentinel: the addresses are the sentinels
//		dial_timeout  <duration>   # default 5s
//		read_timeout  <duration>   # default 3s
//		write_timeout <duration>   # default 3s
//		pool_size     <n>          # default 10 per CPU
//	}
func (r *RedisStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "redis"
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Err("storage redis needs where Redis is: a redis:// URL, or host:port addresses")
	}
	switch {
	case len(args) == 1 && (strings.Contains(args[0], "://") || strings.HasPrefix(args[0], "{")):
		// A URL, or a placeholder that may hold a URL or host:port list.
		r.URL = args[0]
	default:
		for _, a := range args {
			if strings.Contains(a, "://") {
				return d.Errf("storage redis takes one redis:// URL, or host:port addresses; not %d arguments with a URL among them", len(args))
			}
		}
		r.Addresses = args
	}
	if err := r.checkWhere(); err != nil {
		return d.Errf("storage redis: %v", err)
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "key_prefix":
			if r.KeyPrefix, err = singleArg(d); err == nil {
				err = lineErr(d, checkKeyPrefix(r.KeyPrefix))
			}
		case "username":
			r.Username, err = singleArg(d)
		case "password":
			r.Password, err = singleArg(d)
		case "master_name":
			r.MasterName, err = singleArg(d)
		case "tls":
			r.TLS, err = flagArg(d)
		case "cluster":
			r.Cluster, err = flagArg(d)
		case "dial_timeout":
			r.DialTimeout, err = durationArg(d)
		case "read_timeout":
			r.ReadTimeout, err = durationArg(d)
		case "write_timeout":
			r.WriteTimeout, err = durationArg(d)
		case "pool_size":
			r.PoolSize, err = countArg(d)
		default:
			return d.Errf("unrecognized storage redis subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	// The rest of check() holds by the syntax; Provision runs it all on
	// the resolved values.
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*RedisStorage)(nil)
	_ caddy.CleanerUpper    = (*RedisStorage)(nil)
	_ StorageProvider       = (*RedisStorage)(nil)
	_ caddyfile.Unmarshaler = (*RedisStorage)(nil)
)
