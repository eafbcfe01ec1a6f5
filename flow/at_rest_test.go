package flow_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/internal/testsecrets"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// A copy of the Badger folder yields no device code and no token: not
// while approved tokens wait for the device (sealed to a key only the
// device code derives), not after delivery. The folder is read whole,
// value log included, with the store closed as by a restart.
func TestNoSecretsAtRestInBadger(t *testing.T) {
	dir := t.TempDir()
	first := newHarness(t, harnessOptions{dir: dir, upstream: true})
	client := first.up.ClientID
	auth := first.newCode("192.0.2.1", client)
	if done := first.approve(personBrowser(), auth["user_code"].(string), nil); !done.isPage("success") {
		t.Fatalf("sign-in: %d\n%s", done.status, done.body)
	}
	first.stop()
	waiting := dirBytes(t, dir)
	if len(waiting) == 0 {
		t.Fatal("the Badger folder is empty")
	}

	second := newHarness(t, harnessOptions{dir: dir, clock: first.clock})
	deviceCode := auth["device_code"].(string)
	status, tokens := second.poll(deviceCode, client)
	if status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, tokens)
	}
	second.stop()
	secrets := deliveredSecrets(t, deviceCode, tokens)
	testsecrets.Absent(t, "Badger folder while the tokens waited", waiting, secrets)
	testsecrets.Absent(t, "Badger folder after delivery", dirBytes(t, dir), secrets)
}

// The same of everything the module keeps in Redis: every key and every
// value of every type, read while the tokens wait and after delivery.
func TestNoSecretsAtRestInRedis(t *testing.T) {
	srv := redistest.Start(t)
	c, err := redisstore.Open(context.Background(), redisstore.Options{URL: srv.URL, KeyPrefix: "rest:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := newHarness(t, harnessOptions{upstream: true, configure: func(cfg *flow.Config) { cfg.Store = c.Store("rest-test") }})
	client := h.up.ClientID
	auth := h.newCode("192.0.2.1", client)
	if done := h.approve(personBrowser(), auth["user_code"].(string), nil); !done.isPage("success") {
		t.Fatalf("sign-in: %d\n%s", done.status, done.body)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	waiting := redisBytes(t, rdb)
	deviceCode := auth["device_code"].(string)
	status, tokens := h.poll(deviceCode, client)
	if status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, tokens)
	}
	secrets := deliveredSecrets(t, deviceCode, tokens)
	testsecrets.Absent(t, "Redis while the tokens waited", waiting, secrets)
	testsecrets.Absent(t, "Redis after delivery", redisBytes(t, rdb), secrets)
}

// deliveredSecrets are the device code and the tokens it delivered, by
// name.
func deliveredSecrets(t *testing.T, deviceCode string, tokens map[string]any) map[string]string {
	t.Helper()
	secrets := map[string]string{"device code": deviceCode}
	for _, name := range []string{"access_token", "refresh_token", "id_token"} {
		if secrets[name], _ = tokens[name].(string); secrets[name] == "" {
			t.Fatalf("no %s delivered", name)
		}
	}
	return secrets
}

// redisBytes reads every key of the database and its value, whatever its
// type (a dump would compress long values and hide what they hold).
func redisBytes(t *testing.T, rdb *redis.Client) []byte {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("Redis holds no keys: %v", err)
	}
	var all []byte
	for _, k := range keys {
		var v any
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "none": // expired since KEYS
		default:
			t.Fatalf("key %q of type %s: the test cannot read it", k, typ)
		}
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		all = fmt.Appendf(all, "%s=%v\n", k, v)
	}
	return all
}

// dirBytes reads every file under dir.
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}
