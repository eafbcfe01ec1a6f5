package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
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

func open(t testing.TB, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = uniquePrefix()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redisstore.Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) flow.Store {
		return open(t, redisstore.Options{URL: srv.URL})
	})
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	storetest.RunExpiry(t, func(t *testing.T) flow.Store {
		return open(t, redisstore.Options{URL: srv.URL, Grace: storetest.ExpiryGrace})
	}, time.Sleep)
}

func TestCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	var stores []*redisstore.Store
	var mu sync.Mutex
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) flow.Store {
			s := open(t, redisstore.Options{Addrs: cluster.Addrs})
			if _, ok := s.Client().(*redis.ClusterClient); !ok {
				t.Fatalf("client is %T, want *redis.ClusterClient", s.Client())
			}
			mu.Lock()
			stores = append(stores, s)
			mu.Unlock()
			return s
		})
	})
	t.Run("Expiry", func(t *testing.T) {
		storetest.RunExpiry(t, func(t *testing.T) flow.Store {
			return open(t, redisstore.Options{Addrs: cluster.Addrs, Grace: storetest.ExpiryGrace})
		}, time.Sleep)
	})
	// One seed address with Cluster set works as well.
	t.Run("SingleSeed", func(t *testing.T) {
		s := open(t, redisstore.Options{Addrs: cluster.Addrs[:1], Cluster: true})
		if _, ok := s.Client().(*redis.ClusterClient); !ok {
			t.Fatalf("client is %T, want *redis.ClusterClient", s.Client())
		}
		d := storetest.NewDevice(time.Minute)
		if err := s.CreateDevice(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	})
	// The suite's keys really were spread over the nodes.
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

// TestKeys checks key names, hash tags and expiry times.
func TestKeys(t *testing.T) {
	srv := redistest.Start(t)
	grace := 2 * time.Minute
	s := open(t, redisstore.Options{URL: srv.URL, KeyPrefix: "kt:", Grace: grace})
	ctx := context.Background()
	c := s.Client()

	d := storetest.NewDevice(10 * time.Minute)
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	wantTTL := func(key string, want time.Duration) {
		t.Helper()
		got, err := c.PTTL(ctx, key).Result()
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
	wantTTL("kt:dev:{"+d.ID+"}", 10*time.Minute+grace)
	wantTTL("kt:uc:{"+d.UserCode+"}", 10*time.Minute+grace)
	if id, _ := c.Get(ctx, "kt:uc:{"+d.UserCode+"}").Result(); id != d.ID {
		t.Errorf("user code index holds %q, want %q", id, d.ID)
	}

	// Saving with a later ExpiresAt moves both expiries along.
	err := s.UpdateDevice(ctx, d.ID, func(d *flow.Device) (flow.Verdict, error) {
		d.ExpiresAt = d.ExpiresAt.Add(20 * time.Minute)
		return flow.Save, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantTTL("kt:dev:{"+d.ID+"}", 30*time.Minute+grace)
	wantTTL("kt:uc:{"+d.UserCode+"}", 30*time.Minute+grace)

	l := &flow.Login{DeviceID: d.ID, Verifier: "v", ExpiresAt: time.Now().Add(3 * time.Minute)}
	if err := s.PutLogin(ctx, "L1", l); err != nil {
		t.Fatal(err)
	}
	wantTTL("kt:login:{L1}", 3*time.Minute)

	if _, err := s.Hit(ctx, "H1", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hit(ctx, "H1", time.Hour); err != nil { // a later hit keeps the first TTL
		t.Fatal(err)
	}
	wantTTL("kt:hit:{H1}", 90*time.Second)

	if _, err := s.Secret(ctx, "S1", func() ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatal(err)
	}
	wantTTL("kt:secret:{S1}", -1)

	// An already expired login is not stored.
	if err := s.PutLogin(ctx, "L2", &flow.Login{ExpiresAt: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLogin(ctx, "L2"); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("TakeLogin(expired) = %v, want ErrNotFound", err)
	}

	// Deleting removes both keys.
	if err := s.UpdateDevice(ctx, d.ID, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, "kt:dev:{"+d.ID+"}", "kt:uc:{"+d.UserCode+"}").Result(); n != 0 {
		t.Errorf("%d keys left after Delete", n)
	}
}

// TestOrphanedIndex: a user code index entry whose record is gone (a crash
// between the steps of CreateDevice or of a Delete) reads as not found and
// does not confuse later writers.
func TestOrphanedIndex(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, redisstore.Options{URL: srv.URL, KeyPrefix: "oi:"})
	ctx := context.Background()
	code := flow.Base20.New()
	if err := s.Client().Set(ctx, "oi:uc:{"+code+"}", "no-such-id", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeviceByUserCode(ctx, code); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("DeviceByUserCode(orphan) = %v, want ErrNotFound", err)
	}
	d := storetest.NewDevice(time.Minute)
	storetest.SetUserCode(d, code)
	if err := s.CreateDevice(ctx, d); !errors.Is(err, flow.ErrUserCodeTaken) {
		t.Fatalf("CreateDevice over an orphan = %v, want ErrUserCodeTaken", err)
	}
	if n, _ := s.Client().Exists(ctx, "oi:dev:{"+d.ID+"}").Result(); n != 0 {
		t.Fatal("a refused record was stored")
	}

	// A record whose ID exists already: refused, and the code released.
	d1 := storetest.NewDevice(time.Minute)
	if err := s.CreateDevice(ctx, d1); err != nil {
		t.Fatal(err)
	}
	d2 := storetest.NewDevice(time.Minute)
	d2.ID = d1.ID
	if err := s.CreateDevice(ctx, d2); err == nil || errors.Is(err, flow.ErrUserCodeTaken) {
		t.Fatalf("CreateDevice with a duplicate ID = %v, want another error", err)
	}
	if n, _ := s.Client().Exists(ctx, "oi:uc:{"+d2.UserCode+"}").Result(); n != 0 {
		t.Fatal("the duplicate's user code stayed claimed")
	}
}

func TestKeyPrefixesAreSeparate(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, redisstore.Options{URL: srv.URL, KeyPrefix: "a:"})
	b := open(t, redisstore.Options{URL: srv.URL, KeyPrefix: "b:"})
	ctx := context.Background()
	d := storetest.NewDevice(time.Minute)
	if err := a.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeviceByUserCode(ctx, d.UserCode); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("another prefix sees the device: %v", err)
	}
	if err := b.CreateDevice(ctx, d); err != nil {
		t.Fatalf("the same user code under another prefix: %v", err)
	}
	if n, _ := a.Hit(ctx, "k", time.Minute); n != 1 {
		t.Fatal(n)
	}
	if n, _ := b.Count(ctx, "k"); n != 0 {
		t.Fatalf("another prefix sees the counter: %d", n)
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

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := redisstore.Open(ctx, redisstore.Options{}); err == nil {
		t.Error("Open without an address succeeded")
	}
	if _, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{"a:1", "b:2"}, DB: 3}); err == nil {
		t.Error("Open of a cluster with DB 3 succeeded")
	}
	// Nothing listens on port 1.
	_, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{"127.0.0.1:1"}, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	if !errors.Is(err, flow.ErrUnavailable) {
		t.Errorf("Open of a dead address = %v, want ErrUnavailable", err)
	}
}

// TestFault stops (gracefully or by SIGKILL) the server under load:
// operations fail fast with flow.ErrUnavailable and nothing panics; after a
// restart the data written before is there and everything works again.
func TestFault(t *testing.T) {
	for _, mode := range []string{"Stop", "Kill"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t, redistest.AppendOnly())
			s := open(t, redisstore.Options{
				URL:          srv.URL,
				DialTimeout:  200 * time.Millisecond,
				ReadTimeout:  300 * time.Millisecond,
				WriteTimeout: 300 * time.Millisecond,
				MaxRetries:   -1,
				Configure: func(o *redis.UniversalOptions) {
					o.PoolTimeout = 500 * time.Millisecond
					o.DialerRetries = 1
				},
			})
			ctx := context.Background()

			d := storetest.NewDevice(time.Hour)
			if err := s.CreateDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
			secret, err := s.Secret(ctx, "cookie", func() ([]byte, error) { return []byte("the secret"), nil })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Hit(ctx, "h", time.Hour); err != nil {
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
						err := s.UpdateDevice(ctx, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
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
					return s.UpdateDevice(ctx, d.ID, func(*flow.Device) (flow.Verdict, error) {
						t.Error("fn called although the record could not be read")
						return flow.Keep, nil
					})
				}},
				{"PutLogin", func(ctx context.Context) error {
					return s.PutLogin(ctx, "l", &flow.Login{ExpiresAt: time.Now().Add(time.Minute)})
				}},
				{"TakeLogin", func(ctx context.Context) error { _, err := s.TakeLogin(ctx, "l"); return err }},
				{"Hit", func(ctx context.Context) error { _, err := s.Hit(ctx, "h", time.Hour); return err }},
				{"Count", func(ctx context.Context) error { _, err := s.Count(ctx, "h"); return err }},
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
			if got.ID != d.ID || !bytes.Equal(got.SealKey, d.SealKey) {
				t.Fatalf("after restart got %+v, want %+v", got, d)
			}
			again, err := s.Secret(ctx, "cookie", func() ([]byte, error) { return []byte("other"), nil })
			if err != nil || !bytes.Equal(again, secret) {
				t.Fatalf("Secret after restart = %q, %v; want %q", again, err, secret)
			}
			if n, err := s.Hit(ctx, "h", time.Hour); err != nil || n != 2 {
				t.Fatalf("Hit after restart = %d, %v; want 2", n, err)
			}
			err = s.UpdateDevice(ctx, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
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

func TestUnavailableMessage(t *testing.T) {
	// Errors name the operation, say the store is unavailable and keep the
	// cause.
	_, err := redisstore.Open(context.Background(), redisstore.Options{Addrs: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	if err == nil {
		t.Fatal("Open of a dead address succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "redisstore: connect") || !strings.Contains(msg, flow.ErrUnavailable.Error()) {
		t.Errorf("error message %q", msg)
	}
}

// ---- benchmarks ----

func BenchmarkCreateDevice(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, redisstore.Options{URL: srv.URL})
	ctx := context.Background()
	devs := make([]*flow.Device, b.N)
	for i := range devs {
		devs[i] = storetest.NewDevice(10 * time.Minute)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := s.CreateDevice(ctx, devs[i])
		for errors.Is(err, flow.ErrUserCodeTaken) { // two of b.N random codes may be equal: draw again, as the flow does
			storetest.SetUserCode(devs[i], flow.Base20.New())
			err = s.CreateDevice(ctx, devs[i])
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPollPending(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, redisstore.Options{URL: srv.URL})
	ctx := context.Background()
	d := storetest.NewDevice(time.Hour)
	if err := s.CreateDevice(ctx, d); err != nil {
		b.Fatal(err)
	}
	poll := func(rec *flow.Device) (flow.Verdict, error) {
		if rec == nil || rec.Status != flow.Pending {
			return flow.Keep, errors.New("not pending")
		}
		rec.LastPoll = time.Now()
		return flow.Save, nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.UpdateDevice(ctx, d.ID, poll); err != nil {
			b.Fatal(err)
		}
	}
}
