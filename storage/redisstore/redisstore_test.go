package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
	"github.com/redis/go-redis/v9"
)

// quietLogger drops go-redis's "failed to dial" lines, which the fault
// tests provoke by the dozen, and passes on everything else.
type quietLogger struct{}

func (quietLogger) Printf(_ context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "failed to dial") {
		return
	}
	log.Print("redis: " + msg)
}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

// uniquePrefix keeps tests that share a server apart.
func uniquePrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:]) + ":"
}

// connect opens a Client, with a prefix of its own unless opts has one,
// and closes it when the test ends.
func connect(t testing.TB, opts redisstore.Options) *redisstore.Client {
	t.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = uniquePrefix()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := redisstore.Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// create stores d, drawing another user code when two random ones clash.
func create(t testing.TB, s flow.Store, d *flow.Device) {
	t.Helper()
	err := s.CreateDevice(context.Background(), d)
	for errors.Is(err, flow.ErrUserCodeTaken) {
		d.UserCode = codes.Base20.New()
		err = s.CreateDevice(context.Background(), d)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// nsHash is the namespace's part of every key.
func nsHash(namespace string) string {
	sum := sha256.Sum256([]byte(namespace))
	return hex.EncodeToString(sum[:8])
}

// opener returns the suite's Open: every call connects a Client of its
// own, as every Caddy instance has, all under one fresh key prefix. So the
// suite's Namespaces test checks both that namespaces on one Redis and one
// prefix are apart and that one namespace on two Clients is shared.
func opener(opts redisstore.Options) storetest.Open {
	opts.KeyPrefix = uniquePrefix()
	return func(t *testing.T, namespace string) flow.Store {
		return connect(t, opts).Store(namespace)
	}
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, opener(redisstore.Options{URL: srv.URL}))
	open, corrupt := corruptible(redisstore.Options{URL: srv.URL})
	storetest.RunUnreadable(t, open, corrupt)
}

// corruptible is opener with the suite's Corrupt, which writes a record
// that is no record with a plain SET.
func corruptible(opts redisstore.Options) (storetest.Open, storetest.Corrupt) {
	opts.KeyPrefix = uniquePrefix()
	var c *redisstore.Client
	open := func(t *testing.T, namespace string) flow.Store {
		c = connect(t, opts)
		return c.Store(namespace)
	}
	corrupt := func(t *testing.T, _ flow.Store, namespace, userCode string) {
		key := opts.KeyPrefix + nsHash(namespace) + ":dev:{" + userCode + "}"
		if err := c.Redis().Set(context.Background(), key, "\x01 not a record", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return open, corrupt
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	storetest.RunExpiry(t, opener(redisstore.Options{URL: srv.URL, Grace: storetest.ExpiryGrace}), time.Sleep)
}

// TestKeys checks key names, hash tags and expiry times.
func TestKeys(t *testing.T) {
	srv := redistest.Start(t)
	grace := 2 * time.Minute
	c := connect(t, redisstore.Options{URL: srv.URL, KeyPrefix: "kt:", Grace: grace})
	s := c.Store("handler-1")
	ctx := context.Background()
	rdb := c.Redis()
	p := "kt:" + nsHash("handler-1") + ":"
	if len(p) != len("kt:")+16+1 {
		t.Fatalf("prefix %q", p)
	}

	wantTTL := func(key string, want time.Duration) {
		t.Helper()
		got, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want < 0 {
			if got != -1 {
				t.Errorf("PTTL(%s) = %v, want none", key, got)
			}
			return
		}
		if got > want || got < want-5*time.Second {
			t.Errorf("PTTL(%s) = %v, want about %v", key, got, want)
		}
	}

	d := storetest.NewDevice(10 * time.Minute)
	create(t, s, d)
	devKey := p + "dev:{" + d.UserCode + "}"
	wantTTL(devKey, 10*time.Minute+grace)
	if keys, _ := rdb.Keys(ctx, "kt:*").Result(); len(keys) != 1 || keys[0] != devKey {
		t.Errorf("keys after CreateDevice: %q, want just %q", keys, devKey)
	}

	// Saving with a later ExpiresAt moves the expiry along.
	err := s.UpdateDevice(ctx, d.UserCode, func(d *flow.Device) (flow.Verdict, error) {
		d.ExpiresAt = d.ExpiresAt.Add(20 * time.Minute)
		return flow.Save, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantTTL(devKey, 30*time.Minute+grace)

	l := &flow.Login{UserCode: d.UserCode, Verifier: "v", ExpiresAt: time.Now().Add(3 * time.Minute)}
	if err := s.PutLogin(ctx, "L1", l); err != nil {
		t.Fatal(err)
	}
	wantTTL(p+"login:{L1}", 3*time.Minute)

	if _, err := storetest.Hit(ctx, s, "H1", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := storetest.Hit(ctx, s, "H1", time.Hour); err != nil { // a later hit keeps the first TTL
		t.Fatal(err)
	}
	wantTTL(p+"hit:{"+nsHash("handler-1")+"}:H1", 90*time.Second)

	if _, err := s.Secret(ctx, "S1", func() ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatal(err)
	}
	wantTTL(p+"secret:{S1}", -1)

	// An already expired login is not stored.
	if err := s.PutLogin(ctx, "L2", &flow.Login{ExpiresAt: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, p+"login:{L2}").Result(); n != 0 {
		t.Error("an expired login was stored")
	}

	// Deleting removes the key.
	if err := s.UpdateDevice(ctx, d.UserCode, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, devKey).Result(); n != 0 {
		t.Error("the record is left after Delete")
	}
}

// TestUpdateConflict: when another writer changes the record between the
// read and the write, fn is called again on the newer record and only its
// last verdict is applied.
func TestUpdateConflict(t *testing.T) {
	srv := redistest.Start(t)
	c := connect(t, redisstore.Options{URL: srv.URL})
	s, other := c.Store("h"), c.Store("h")
	ctx := context.Background()
	d := storetest.NewDevice(time.Minute)
	create(t, s, d)

	calls := 0
	err := s.UpdateDevice(ctx, d.UserCode, func(rec *flow.Device) (flow.Verdict, error) {
		calls++
		if calls == 1 {
			err := other.UpdateDevice(ctx, d.UserCode, func(rec *flow.Device) (flow.Verdict, error) {
				rec.Status = flow.Denied
				rec.Reason = "no"
				return flow.Save, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			rec.Status = flow.Approved
			return flow.Save, nil
		}
		if rec.Status != flow.Denied {
			t.Errorf("second call got status %v, want the other writer's denied", rec.Status)
		}
		return flow.Keep, nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("UpdateDevice = %v after %d calls, want nil after 2", err, calls)
	}
	if got, _ := s.DeviceByUserCode(ctx, d.UserCode); got.Status != flow.Denied || got.Reason != "no" {
		t.Fatalf("record %+v, want the other writer's", got)
	}

	// A Save that changes the user code is refused.
	err = s.UpdateDevice(ctx, d.UserCode, func(rec *flow.Device) (flow.Verdict, error) {
		rec.UserCode = "OTHER"
		return flow.Save, nil
	})
	if err == nil {
		t.Fatal("a Save that changed UserCode succeeded")
	}
}

func TestCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, opener(redisstore.Options{Addrs: cluster.Addrs}))
		open, corrupt := corruptible(redisstore.Options{Addrs: cluster.Addrs})
		storetest.RunUnreadable(t, open, corrupt)
	})
	t.Run("Expiry", func(t *testing.T) {
		storetest.RunExpiry(t, opener(redisstore.Options{Addrs: cluster.Addrs, Grace: storetest.ExpiryGrace}), time.Sleep)
	})
	// A seed list and a single seed address with Cluster set both make
	// cluster clients, which share the data.
	t.Run("SingleSeed", func(t *testing.T) {
		prefix := uniquePrefix()
		all := connect(t, redisstore.Options{Addrs: cluster.Addrs, KeyPrefix: prefix})
		one := connect(t, redisstore.Options{Addrs: cluster.Addrs[:1], Cluster: true, KeyPrefix: prefix})
		for _, c := range []*redisstore.Client{all, one} {
			if _, ok := c.Redis().(*redis.ClusterClient); !ok {
				t.Fatalf("client is %T, want *redis.ClusterClient", c.Redis())
			}
		}
		for range 10 {
			d := storetest.NewDevice(time.Minute)
			create(t, all.Store("h"), d)
			if _, err := one.Store("h").DeviceByUserCode(context.Background(), d.UserCode); err != nil {
				t.Fatalf("DeviceByUserCode through one seed: %v", err)
			}
		}
	})
	// The keys really were spread over the nodes.
	for _, n := range cluster.Nodes {
		size, err := redistest.Do(n.Addr, "DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		if size == "0" {
			t.Errorf("cluster node %s holds no keys: the test did not use the whole cluster", n.Addr)
		}
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in       string
		addrs    []string
		cluster  bool
		db       int
		user     string
		password string
		tls      bool
		err      bool
	}{
		{in: "redis://localhost:6379", addrs: []string{"localhost:6379"}},
		{in: "redis://127.0.0.1", addrs: []string{"127.0.0.1:6379"}},
		{in: "redis://:s3cret@10.0.0.5:6380/2", addrs: []string{"10.0.0.5:6380"}, db: 2, password: "s3cret"},
		{in: "rediss://user:pw@redis.example:6390/1?dial_timeout=2s", addrs: []string{"redis.example:6390"}, db: 1, user: "user", password: "pw", tls: true},
		{in: "redis://[::1]:7000/0", addrs: []string{"[::1]:7000"}},
		{in: "redis://a:7000?addr=b:7001&addr=c:7002", addrs: []string{"a:7000", "b:7001", "c:7002"}, cluster: true},
		{in: "rediss://:pw@a:7000?addr=b:7001", addrs: []string{"a:7000", "b:7001"}, cluster: true, password: "pw", tls: true},
		{in: "127.0.0.1:6379", addrs: []string{"127.0.0.1:6379"}},
		{in: "10.0.0.1:7000,10.0.0.2:7000, 10.0.0.3:7000", addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}, cluster: true},
		{in: " a:1 b:2 ", addrs: []string{"a:1", "b:2"}, cluster: true},
		{in: "", err: true},
		{in: "localhost", err: true},
		{in: "a:1,b", err: true},
		{in: "a:99999", err: true},
		{in: "http://localhost:6379", err: true},
		{in: "redis://localhost/a/b", err: true},
		{in: "redis://localhost?bogus=1", err: true},
		{in: "unix:///tmp/redis.sock", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			o, err := redisstore.ParseURL(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %+v, want an error", tc.in, o)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tc.in, err)
			}
			if fmt.Sprint(o.Addrs) != fmt.Sprint(tc.addrs) {
				t.Errorf("Addrs = %v, want %v", o.Addrs, tc.addrs)
			}
			if isCluster := len(o.Addrs) > 1 || o.IsClusterMode; isCluster != tc.cluster {
				t.Errorf("cluster = %v, want %v", isCluster, tc.cluster)
			}
			if o.DB != tc.db || o.Username != tc.user || o.Password != tc.password || (o.TLSConfig != nil) != tc.tls {
				t.Errorf("got DB %d user %q password %q TLS %v; want %d %q %q %v",
					o.DB, o.Username, o.Password, o.TLSConfig != nil, tc.db, tc.user, tc.password, tc.tls)
			}
		})
	}
}

// Every option go-redis reads from a URL reaches the client: ParseURL
// takes go-redis's own parsing and drops nothing of it (only the address
// changes name, Addr to Addrs).
func TestParseURLKeepsEveryOption(t *testing.T) {
	for _, in := range []string{
		"rediss://u:p@h:6390/3?client_name=c&protocol=2&max_retries=4&min_retry_backoff=1ms&max_retry_backoff=2s&dial_timeout=3s&read_timeout=4s&write_timeout=5s&pool_fifo=true&pool_size=6&max_concurrent_dials=7&pool_timeout=8s&min_idle_conns=1&max_idle_conns=9&max_active_conns=10&conn_max_idle_time=11s&conn_max_lifetime=12s&conn_max_lifetime_jitter=13s&pipeline_pool_size=14&pipeline_read_buffer_size=4096&pipeline_write_buffer_size=8192",
		"redis://u:p@a:7000?addr=b:7001&client_name=c&max_retries=4&dial_timeout=3s&pool_size=6&max_concurrent_dials=7&conn_max_lifetime_jitter=13s&pipeline_pool_size=14",
	} {
		var parsed any
		var err error
		if strings.Contains(in, "addr=") {
			parsed, err = redis.ParseClusterURL(in)
		} else {
			parsed, err = redis.ParseURL(in)
		}
		if err != nil {
			t.Fatal(err)
		}
		uo, err := redisstore.ParseURL(in)
		if err != nil {
			t.Fatal(err)
		}
		src, dst := reflect.ValueOf(parsed).Elem(), reflect.ValueOf(uo).Elem()
		for i := range src.NumField() {
			f := src.Type().Field(i)
			if !f.IsExported() || f.Name == "Addr" || f.Name == "Addrs" || f.Name == "Network" || src.Field(i).IsZero() {
				continue
			}
			d := dst.FieldByName(f.Name)
			if !d.IsValid() {
				t.Errorf("%s: go-redis sets %s, which UniversalOptions has not", in, f.Name)
				continue
			}
			if f.Type.Kind() == reflect.Func {
				continue // not comparable; set by go-redis's defaults only
			}
			if !reflect.DeepEqual(d.Interface(), src.Field(i).Interface()) {
				t.Errorf("%s: %s = %v, go-redis parsed %v", in, f.Name, d.Interface(), src.Field(i).Interface())
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := redisstore.Open(ctx, redisstore.Options{}); err == nil {
		t.Error("Open without an address succeeded")
	}
	if _, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{"a:1", "b:2"}, DB: 3}); err == nil {
		t.Error("Open of a cluster with DB 3 succeeded")
	}
	// Nothing listens on port 1. Errors name the operation, say the store
	// is unavailable and keep the cause.
	_, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{"127.0.0.1:1"}, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	if !errors.Is(err, flow.ErrUnavailable) {
		t.Errorf("Open of a dead address = %v, want ErrUnavailable", err)
	}
	if msg := fmt.Sprint(err); !strings.Contains(msg, "redisstore: connect") || !strings.Contains(msg, "connection refused") {
		t.Errorf("error message %q", msg)
	}
}

// TestFault stops (gracefully or by SIGKILL) the server under load:
// operations fail fast with flow.ErrUnavailable and nothing panics; after a
// restart the data written before is there and everything works again.
func TestFault(t *testing.T) {
	for _, mode := range []string{"Stop", "Kill"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t, redistest.AppendOnly())
			s := connect(t, redisstore.Options{
				URL:          srv.URL + "?pool_timeout=500ms",
				DialTimeout:  200 * time.Millisecond,
				ReadTimeout:  300 * time.Millisecond,
				WriteTimeout: 300 * time.Millisecond,
				MaxRetries:   -1,
			}).Store("h")
			ctx := context.Background()

			d := storetest.NewDevice(time.Hour)
			create(t, s, d)
			secret, err := s.Secret(ctx, "cookie", func() ([]byte, error) { return []byte("the secret"), nil })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := storetest.Hit(ctx, s, "h", time.Hour); err != nil {
				t.Fatal(err)
			}

			// Keep the store busy while the server goes away.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var failures atomic.Int64
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						err := s.UpdateDevice(ctx, d.UserCode, func(rec *flow.Device) (flow.Verdict, error) {
							if rec == nil {
								return flow.Keep, nil
							}
							rec.LastPoll = time.Now()
							return flow.Save, nil
						})
						if err != nil {
							if !errors.Is(err, flow.ErrUnavailable) {
								t.Errorf("UpdateDevice while going down: %v (not ErrUnavailable)", err)
							}
							failures.Add(1)
							time.Sleep(10 * time.Millisecond)
						}
					}
				})
			}
			time.Sleep(50 * time.Millisecond)
			if mode == "Stop" {
				srv.Stop()
			} else {
				srv.Kill()
			}
			time.Sleep(100 * time.Millisecond)

			ops := []struct {
				name string
				run  func(ctx context.Context) error
			}{
				{"CreateDevice", func(ctx context.Context) error { return s.CreateDevice(ctx, storetest.NewDevice(time.Hour)) }},
				{"DeviceByUserCode", func(ctx context.Context) error { _, err := s.DeviceByUserCode(ctx, d.UserCode); return err }},
				{"UpdateDevice", func(ctx context.Context) error {
					return s.UpdateDevice(ctx, d.UserCode, func(*flow.Device) (flow.Verdict, error) {
						t.Error("fn called although the record could not be read")
						return flow.Keep, nil
					})
				}},
				{"PutLogin", func(ctx context.Context) error {
					return s.PutLogin(ctx, "l", &flow.Login{ExpiresAt: time.Now().Add(time.Minute)})
				}},
				{"TakeLogin", func(ctx context.Context) error { _, err := s.TakeLogin(ctx, "l", ""); return err }},
				{"Hit", func(ctx context.Context) error { _, err := storetest.Hit(ctx, s, "h", time.Hour); return err }},
				{"Count", func(ctx context.Context) error { _, err := storetest.Count(ctx, s, "h"); return err }},
				{"Secret", func(ctx context.Context) error {
					_, err := s.Secret(ctx, "cookie", func() ([]byte, error) { return []byte("other"), nil })
					return err
				}},
			}
			for _, op := range ops {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				start := time.Now()
				err := op.run(ctx)
				took := time.Since(start)
				cancel()
				if !errors.Is(err, flow.ErrUnavailable) {
					t.Errorf("%s with the server down: %v, want ErrUnavailable", op.name, err)
				}
				if took > 2*time.Second {
					t.Errorf("%s with the server down took %v, want a quick failure", op.name, took)
				}
			}
			close(stop)
			wg.Wait()
			if failures.Load() == 0 {
				t.Error("no background UpdateDevice failed while the server was down")
			}

			srv.Restart()
			// The pool may hand out a dead connection or two first.
			deadline := time.Now().Add(10 * time.Second)
			var got *flow.Device
			for {
				got, err = s.DeviceByUserCode(ctx, d.UserCode)
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("DeviceByUserCode after restart: %v", err)
			}
			if !bytes.Equal(got.CodeHash, d.CodeHash) || !bytes.Equal(got.SealKey, d.SealKey) {
				t.Fatalf("after restart got %+v, want %+v", got, d)
			}
			again, err := s.Secret(ctx, "cookie", func() ([]byte, error) { return []byte("other"), nil })
			if err != nil || !bytes.Equal(again, secret) {
				t.Fatalf("Secret after restart = %q, %v; want %q", again, err, secret)
			}
			if n, err := storetest.Hit(ctx, s, "h", time.Hour); err != nil || n != 2 {
				t.Fatalf("Hit after restart = %d, %v; want 2", n, err)
			}
			err = s.UpdateDevice(ctx, d.UserCode, func(rec *flow.Device) (flow.Verdict, error) {
				if rec == nil {
					return flow.Keep, errors.New("record lost")
				}
				return flow.Delete, nil
			})
			if err != nil {
				t.Fatalf("UpdateDevice after restart: %v", err)
			}
			if err := s.CreateDevice(ctx, storetest.NewDevice(time.Hour)); err != nil {
				t.Fatalf("CreateDevice after restart: %v", err)
			}
		})
	}
}

// ---- benchmarks ----

func BenchmarkCreateDevice(b *testing.B) {
	srv := redistest.Start(b)
	s := connect(b, redisstore.Options{URL: srv.URL}).Store("h")
	devs := make([]*flow.Device, b.N)
	for i := range devs {
		devs[i] = storetest.NewDevice(10 * time.Minute)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, d := range devs {
		create(b, s, d)
	}
}

// pollPending is what a poll of a pending code writes.
func pollPending(rec *flow.Device) (flow.Verdict, error) {
	if rec == nil || rec.Status != flow.Pending {
		return flow.Keep, errors.New("not pending")
	}
	rec.LastPoll = time.Now()
	return flow.Save, nil
}

func BenchmarkPollPending(b *testing.B) {
	srv := redistest.Start(b)
	s := connect(b, redisstore.Options{URL: srv.URL}).Store("h")
	ctx := context.Background()
	d := storetest.NewDevice(time.Hour)
	create(b, s, d)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.UpdateDevice(ctx, d.UserCode, pollPending); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollPendingParallel polls many live codes from several goroutines
// at once, as concurrent requests do; it has the name and shape of
// badgerstore's, so the two line up. Redis is bound by round trips, so this
// (not the one-at-a-time BenchmarkPollPending) is its throughput.
func BenchmarkPollPendingParallel(b *testing.B) {
	srv := redistest.Start(b)
	s := connect(b, redisstore.Options{URL: srv.URL}).Store("h")
	ctx := context.Background()
	userCodes := make([]string, 10_000)
	for i := range userCodes {
		d := storetest.NewDevice(time.Hour)
		create(b, s, d)
		userCodes[i] = d.UserCode
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(time.Now().UnixNano()) // goroutines start at different codes
		for pb.Next() {
			i++
			if err := s.UpdateDevice(ctx, userCodes[(i&0x7fffffff)%len(userCodes)], pollPending); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
