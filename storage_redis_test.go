package deviceflow

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

func TestRedisStorageCaddyfile(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"url", `redis redis://127.0.0.1:6379/2`, `{"url":"redis://127.0.0.1:6379/2"}`},
		{"tls url", `redis rediss://:pw@redis.example:6380`, `{"url":"rediss://:pw@redis.example:6380"}`},
		{"placeholder", `redis {env.REDIS_URL}`, `{"url":"{env.REDIS_URL}"}`},
		{"one address", `redis 10.0.0.5:6379`, `{"addresses":["10.0.0.5:6379"]}`},
		{"cluster", `redis 10.0.0.5:6379 10.0.0.6:6379 10.0.0.7:6379`, `{"addresses":["10.0.0.5:6379","10.0.0.6:6379","10.0.0.7:6379"]}`},
		{"block", "redis 10.0.0.5:6379 {\n key_prefix auth: \n username dev\n password {env.REDIS_PASSWORD}\n tls\n cluster\n dial_timeout 2s\n read_timeout 1s\n write_timeout 1500ms\n pool_size 20\n}",
			`{"addresses":["10.0.0.5:6379"],"cluster":true,"username":"dev","password":"{env.REDIS_PASSWORD}","tls":true,"key_prefix":"auth:","dial_timeout":2000000000,"read_timeout":1000000000,"write_timeout":1500000000,"pool_size":20}`},
		{"sentinel", "redis 10.0.0.5:26379 10.0.0.6:26379 {\n master_name mymaster\n}", `{"addresses":["10.0.0.5:26379","10.0.0.6:26379"],"master_name":"mymaster"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r RedisStorage
			if err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(r)
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestRedisStorageCaddyfileErrors: mistakes are errors that name the file
// and line, and never quote a password.
func TestRedisStorageCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, storage, want string
		line                int
	}{
		{"nothing", "redis", "needs where Redis is", 5},
		{"not host:port", "redis redis.example", `address "redis.example" is not host:port`, 5},
		{"bad port", "redis redis.example:http", `"http" is not a port number`, 5},
		{"url among addresses", "redis 10.0.0.5:6379 redis://10.0.0.6:6379", "one redis:// URL, or host:port addresses", 5},
		{"wrong scheme", "redis http://10.0.0.5:6379", "invalid URL scheme", 5},
		{"bad database", "redis redis://:hunter2@10.0.0.5:6379/x", "invalid database number", 5},
		{"url with bad port keeps the password out", "redis redis://admin:hunter2@10.0.0.5:port", "bad Redis URL", 5},
		{"cluster with a database", "redis 10.0.0.5:6379 10.0.0.6:6379 {\n\t\t\tusername x\n\t\t}", "", 0}, // fine: no database
		{"unknown subdirective", "redis 10.0.0.5:6379 {\n\t\t\tcolour blue\n\t\t}", `unrecognized storage redis subdirective "colour"`, 6},
		{"key_prefix without value", "redis 10.0.0.5:6379 {\n\t\t\tkey_prefix\n\t\t}", "wrong argument count", 6},
		{"tls with argument", "redis 10.0.0.5:6379 {\n\t\t\ttls yes\n\t\t}", "tls takes no arguments", 6},
		{"bad timeout", "redis 10.0.0.5:6379 {\n\t\t\tdial_timeout soon\n\t\t}", `dial_timeout: "soon" is not a positive duration`, 6},
		{"bad pool size", "redis 10.0.0.5:6379 {\n\t\t\tpool_size 0\n\t\t}", "pool_size", 6},
		{"key_prefix with space", "redis 10.0.0.5:6379 {\n\t\t\tkey_prefix \"a b\"\n\t\t}", "must not contain white space", 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caddyfile := "localhost {\n\tdevice_flow {\n\t\tauthorization_endpoint https://idp.example.com/authorize\n\t\ttoken_endpoint https://idp.example.com/token\n\t\tstorage " +
				tc.storage + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error for:\n%s", caddyfile)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.line > 0 && !strings.Contains(err.Error(), "Caddyfile:"+itoa(tc.line)) {
				t.Errorf("error %q does not name Caddyfile:%d", err, tc.line)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func provisionRedis(t *testing.T, r *RedisStorage) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := r.Provision(ctx)
	if err == nil {
		t.Cleanup(func() { r.Cleanup() })
	}
	return err
}

// TestRedisStorageProvision: only a configuration that cannot work stops
// Caddy; an unreachable Redis does not.
func TestRedisStorageProvision(t *testing.T) {
	t.Setenv("DF_TEST_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
	tests := []struct {
		name    string
		storage RedisStorage
		want    string // "" = provisions
	}{
		{"unreachable", RedisStorage{URL: "redis://127.0.0.1:1/0", DialTimeout: caddy.Duration(100e6)}, ""},
		{"unreachable through a placeholder", RedisStorage{URL: "{env.DF_TEST_REDIS_URL}", DialTimeout: caddy.Duration(100e6)}, ""},
		{"unset placeholder", RedisStorage{URL: "{env.DF_TEST_NOT_SET}"}, "url {env.DF_TEST_NOT_SET} is empty"},
		{"nothing", RedisStorage{}, "no Redis given"},
		{"both", RedisStorage{URL: "redis://127.0.0.1:1", Addresses: []string{"127.0.0.1:2"}}, "either url or addresses"},
		{"malformed url", RedisStorage{URL: "redis://admin:hunter2@127.0.0.1:x/0"}, "bad Redis URL"},
		{"malformed url via placeholder", RedisStorage{URL: "{env.DF_TEST_REDIS_URL}x"}, "invalid database number"},
		{"cluster with a database", RedisStorage{URL: "redis://127.0.0.1:1/3", Cluster: true}, "only database 0"},
		{"bad address", RedisStorage{Addresses: []string{"127.0.0.1"}}, "not host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.storage
			err := provisionRedis(t, &r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Provision: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Provision succeeded; want an error saying %q", tc.want)
			case err != nil && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q does not say %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestRedisStoragePool: two configs with the same settings share one client
// (a reload keeps the connections); the last Cleanup closes it.
func TestRedisStoragePool(t *testing.T) {
	srv := redistest.Start(t)
	a := &RedisStorage{URL: srv.URL, KeyPrefix: "pool:"}
	b := &RedisStorage{URL: srv.URL, KeyPrefix: "pool:"}
	other := &RedisStorage{URL: srv.URL, KeyPrefix: "other:"}
	for _, r := range []*RedisStorage{a, b, other} {
		if err := provisionRedis(t, r); err != nil {
			t.Fatal(err)
		}
	}
	if a.client != b.client {
		t.Error("equal settings got two clients")
	}
	if a.client == other.client {
		t.Error("different key prefixes share a client")
	}
	a.Cleanup()
	ctx := context.Background()
	if _, err := storetest.Count(ctx, b.Store("ns"), "k"); err != nil {
		t.Fatalf("the second config lost its client when the first cleaned up: %v", err)
	}
	b.Cleanup()
	if _, err := storetest.Count(ctx, b.Store("ns"), "k"); err == nil {
		t.Fatal("the client is still open after the last Cleanup")
	}
}
