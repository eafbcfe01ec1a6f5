package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2/caddytest"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/dgraph-io/badger/v4"
	"github.com/spf13/cobra"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// The admin API's device-flow routes and the `caddy device-flow` command,
// against the test process's Caddy: list the live codes (and nothing
// secret of them), deny one (its device hears access_denied), and only
// through Caddy's admin access rules.

func TestAdminOnBadger(t *testing.T) {
	testAdmin(t, "badger "+storeDir(t))
}

func TestAdminOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	testAdmin(t, redisStorage(srv.URL))
}

// codeFields are every field a listed code may have.
var codeFields = []string{"client_id", "client_name", "created_at", "expires_at", "issued_to", "last_poll", "polled", "scope", "status", "user_code"}

func testAdmin(t *testing.T, storage string) {
	up := startUpstream(t)
	startCaddy(t, siteConfigStorage(t, up, storage, "name tv-site\n\t\tguess_limit 3 per 15m"))
	clientID := up.Config().ClientID
	polled, approved := newDevice(t, clientID, "openid"), newDevice(t, clientID, "openid profile")
	if status, out := polled.poll(); out["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", status, out)
	}
	if done := newBrowser(t).approve(approved.userCode()); !done.is("success") {
		t.Fatalf("approval: %d\n%s", done.status, done.body)
	}

	// The handlers.
	status, body := adminRequest(t, http.MethodGet, "/device-flow/", nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"handler":"tv-site"`) {
		t.Fatalf("GET /device-flow/: %d %s", status, body)
	}

	// The codes, and nothing secret.
	status, body = adminRequest(t, http.MethodGet, "/device-flow/tv-site/codes", nil)
	if status != http.StatusOK {
		t.Fatalf("GET codes: %d %s", status, body)
	}
	for _, d := range []*device{polled, approved} {
		hash := codes.Hash(d.deviceCode())
		for _, secret := range []string{d.deviceCode(), hex.EncodeToString(hash), base64.StdEncoding.EncodeToString(hash), base64.RawURLEncoding.EncodeToString(hash)} {
			if bytes.Contains(body, []byte(secret)) {
				t.Fatalf("the listing holds a device code or its hash (%s): %s", secret, body)
			}
		}
	}
	var list struct {
		Handler string           `json:"handler"`
		Live    int              `json:"live"`
		Codes   []map[string]any `json:"codes"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if list.Live != 2 || len(list.Codes) != 2 {
		t.Fatalf("live = %d, codes = %d; want 2: %s", list.Live, len(list.Codes), body)
	}
	byCode := map[string]map[string]any{}
	for _, c := range list.Codes {
		for field := range c {
			if !slices.Contains(codeFields, field) {
				t.Errorf("a listed code has the field %q: %s", field, body)
			}
		}
		byCode[c["user_code"].(string)] = c
	}
	p, a := byCode[polled.userCode()], byCode[approved.userCode()]
	if p == nil || p["status"] != "pending" || p["polled"] != true || p["client_name"] != "Living-room TV" || p["scope"] != "openid" || p["issued_to"] != "127.0.0.1" {
		t.Errorf("the polled code: %v", p)
	}
	if a == nil || a["status"] != "approved" || a["polled"] != false || a["scope"] != "openid profile" {
		t.Errorf("the approved code: %v", a)
	}

	// Denying: the approved code's tokens are gone, and the pending code
	// is denied by its user code as typed.
	status, body = adminRequest(t, http.MethodPost, "/device-flow/tv-site/codes/"+approved.userCode()+"/deny", nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"denied"`) {
		t.Fatalf("deny the approved code: %d %s", status, body)
	}
	typed := strings.ToLower(strings.ReplaceAll(polled.userCode(), "-", ""))
	if status, body = adminRequest(t, http.MethodPost, "/device-flow/tv-site/codes/"+typed+"/deny", nil); status != http.StatusOK {
		t.Fatalf("deny the pending code: %d %s", status, body)
	}
	for _, d := range []*device{polled, approved} {
		if status, out := d.poll(); status != http.StatusBadRequest || out["error"] != "access_denied" {
			t.Errorf("poll of a denied code: %d %v", status, out)
		}
	}

	// What is refused.
	for _, tc := range []struct {
		method, path string
		header       http.Header
		want         int
	}{
		{http.MethodGet, "/device-flow/tv-site/codes", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{http.MethodPost, "/device-flow/tv-site/codes/" + approved.userCode() + "/deny", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{http.MethodGet, "/device-flow/no-such-site/codes", nil, http.StatusNotFound},
		{http.MethodPost, "/device-flow/tv-site/codes/BCDF-GHJK/deny", nil, http.StatusNotFound},
		{http.MethodGet, "/device-flow/tv-site/codes/" + approved.userCode() + "/deny", nil, http.StatusMethodNotAllowed},
		{http.MethodPost, "/device-flow/tv-site/codes", nil, http.StatusMethodNotAllowed},
		{http.MethodGet, "/device-flow/tv-site/codes?limit=0", nil, http.StatusBadRequest},
		{http.MethodGet, "/device-flow/tv-site/codes?limit=10001", nil, http.StatusBadRequest},
		{http.MethodGet, "/device-flow/tv-site/codes?limit=ten", nil, http.StatusBadRequest},
		{http.MethodGet, "/device-flow/tv-site/codes?after=not-a-cursor!", nil, http.StatusBadRequest},
	} {
		if status, body := adminRequest(t, tc.method, tc.path, tc.header); status != tc.want {
			t.Errorf("%s %s %v: %d %s; want %d", tc.method, tc.path, tc.header, status, body, tc.want)
		}
	}

	// The guess limits: wrong user codes counted in this window, and the
	// address they refuse now.
	var limits struct {
		GuessLimits struct {
			Total     int              `json:"wrong_guesses"`
			InForce   bool             `json:"total_in_force"`
			Addresses []map[string]any `json:"addresses"`
		} `json:"guess_limits"`
	}
	if _, body = adminRequest(t, http.MethodGet, "/device-flow/tv-site/codes", nil); json.Unmarshal(body, &limits) != nil || limits.GuessLimits.Total != 0 || len(limits.GuessLimits.Addresses) != 0 {
		t.Fatalf("guess limits before any wrong guess: %s", body)
	}
	for range 3 {
		if status, _, _ := guess(t, "BBBB-BBBB", ""); status != http.StatusBadRequest {
			t.Fatalf("a wrong guess: %d", status)
		}
	}
	_, body = adminRequest(t, http.MethodGet, "/device-flow/tv-site/codes", nil)
	if err := json.Unmarshal(body, &limits); err != nil {
		t.Fatal(err)
	}
	g := limits.GuessLimits
	if g.Total != 3 || g.InForce || len(g.Addresses) != 1 || g.Addresses[0]["address"] != "127.0.0.1" ||
		g.Addresses[0]["wrong_guesses"] != float64(3) || g.Addresses[0]["in_force"] != true {
		t.Fatalf("guess limits after 3 wrong guesses (guess_limit 3): %s", body)
	}

	// A page at a time: the counts and the guess limits on the first. (How
	// many a page holds is the store's: storetest checks it.)
	seen := map[string]bool{}
	for after, pages := "", 0; ; pages++ {
		path := "/device-flow/tv-site/codes?limit=1"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		status, body := adminRequest(t, http.MethodGet, path, nil)
		var page struct {
			Live        *int             `json:"live"`
			GuessLimits *json.RawMessage `json:"guess_limits"`
			Codes       []map[string]any `json:"codes"`
			Next        string           `json:"next"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &page) != nil || (page.Live != nil) != (after == "") || (page.GuessLimits != nil) != (after == "") {
			t.Fatalf("page %d of limit=1: %d %s", pages, status, body)
		}
		for _, c := range page.Codes {
			seen[c["user_code"].(string)] = true
		}
		if after = page.Next; after == "" {
			if pages < 1 || !seen[polled.userCode()] || !seen[approved.userCode()] {
				t.Fatalf("%d pages of limit=1 listed %v; want both codes", pages+1, seen)
			}
			break
		}
	}

	// The command.
	third := newDevice(t, clientID, "openid")
	if out, err := runDeviceFlowCommand(t, "list", "--page", "1"); err != nil || strings.Count(out, "tv-site  ") != 3 || !strings.Contains(out, "3 live codes") {
		t.Fatalf("device-flow list --page 1: %v\n%s", err, out)
	}
	out, err := runDeviceFlowCommand(t, "list")
	if err != nil || !strings.Contains(out, third.userCode()) || !strings.Contains(out, "3 live codes") || strings.Contains(out, third.deviceCode()) ||
		!strings.Contains(out, "tv-site: 3 wrong user codes") || !strings.Contains(out, "refused until then (guess_limit 3): 127.0.0.1") {
		t.Fatalf("device-flow list: %v\n%s", err, out)
	}
	t.Logf("caddy device-flow list:\n%s", out)
	if out, err = runDeviceFlowCommand(t, "deny", third.userCode(), "--handler", "tv-site"); err != nil || !strings.Contains(out, "denied") {
		t.Fatalf("device-flow deny: %v\n%s", err, out)
	}
	if status, out := third.poll(); out["error"] != "access_denied" {
		t.Errorf("poll after `device-flow deny`: %d %v", status, out)
	}
	if _, err = runDeviceFlowCommand(t, "deny", "BCDF-GHJK"); err == nil || !strings.Contains(err.Error(), "no live code") {
		t.Errorf("device-flow deny of an unknown code: %v", err)
	}
}

// adminRequest sends a request to the admin API.
func adminRequest(t *testing.T, method, path string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://localhost:%d%s", adminPort, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// runDeviceFlowCommand runs `caddy device-flow args...` against the test
// process's admin endpoint, as caddycmd builds it.
func runDeviceFlowCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	def, ok := caddycmd.Commands()["device-flow"]
	if !ok {
		t.Fatal("the device-flow command is not registered")
	}
	cmd := &cobra.Command{Use: def.Name, SilenceErrors: true}
	def.CobraFunc(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append(args, "--address", fmt.Sprintf("localhost:%d", adminPort)))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// What the store holds reaches the operator's terminal only printable (a
// user code read from a Redis key, issued_to), and a record that cannot
// be decoded is listed as unreadable instead of failing the listing. The
// records are written straight into the store, as a bug, a disk fault or
// someone with access to Redis could leave them.
func TestAdminStoreContentsOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newKeyPrefix()
	testAdminStoreContents(t, redisStorageWithPrefix(srv.URL, prefix), func(hostile *flow.Device, unreadable string) {
		ctx := context.Background()
		c, err := redisstore.Open(ctx, redisstore.Options{URL: srv.URL, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := c.Store("name tv-site")
		for _, d := range []*flow.Device{hostile, withUserCode(hostile, unreadable)} {
			if err := s.CreateDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		// The one key the store wrote that names the code (KEYS: a test's
		// few keys), spoilt.
		keys, err := c.Redis().Keys(ctx, prefix+"*"+unreadable+"*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("the keys of %s: %q, %v; want one", unreadable, keys, err)
		}
		if err := c.Redis().Set(ctx, keys[0], "\x01 not a record", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// The same on Badger: Caddy lets go of the folder (another config), the
// records are written into it, and Caddy opens it again.
func TestAdminStoreContentsOnBadger(t *testing.T) {
	dir := storeDir(t)
	testAdminStoreContents(t, "badger "+dir, func(hostile *flow.Device, unreadable string) {
		startCaddy(t, siteConfigStorage(t, startUpstream(t), "badger "+storeDir(t), "name elsewhere"))
		db, err := badgerstore.Open(badgerstore.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		s, ctx := db.Store("name tv-site"), context.Background()
		for _, d := range []*flow.Device{hostile, withUserCode(hostile, unreadable)} {
			if err := s.CreateDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		// The one key the store wrote that names the code, spoilt.
		err = db.Badger().Update(func(txn *badger.Txn) error {
			var keys [][]byte
			it := txn.NewIterator(badger.IteratorOptions{})
			for it.Rewind(); it.Valid(); it.Next() {
				if k := it.Item().KeyCopy(nil); bytes.Contains(k, []byte(unreadable)) {
					keys = append(keys, k)
				}
			}
			it.Close()
			if len(keys) != 1 {
				return fmt.Errorf("the keys of %s: %q; want one", unreadable, keys)
			}
			return txn.Set(keys[0], []byte("\x01 not a record"))
		})
		if err := errors.Join(err, db.Close()); err != nil {
			t.Fatal(err)
		}
	})
}

// withUserCode is a copy of d under another user code.
func withUserCode(d *flow.Device, userCode string) *flow.Device {
	c := *d
	c.UserCode = userCode
	return &c
}

// testAdminStoreContents runs the test site on storage, has write put a
// record with control characters in its user code and issued_to and an
// undecodable record under the user code unreadable into the site's
// store (Caddy runs the site again after write), and checks the listing.
func testAdminStoreContents(t *testing.T, storage string, write func(hostile *flow.Device, unreadable string)) {
	up := startUpstream(t)
	config := siteConfigStorage(t, up, storage, "name tv-site")
	startCaddy(t, config)
	good := newDevice(t, up.Config().ClientID, "openid")
	now := time.Now()
	hostile := &flow.Device{
		UserCode: "\x1b]0;owned\x07BC\x1b[2J", ClientID: "tv\x1b[1m", Scope: "openid\x9b1m", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		Interval: 5 * time.Second, CodeHash: make([]byte, 32), SealKey: make([]byte, 32), IssuedTo: "\x1b[31m203.0.113.9\u202e",
	}
	write(hostile, "BBBBCCCC")
	startCaddy(t, config)

	status, body := adminRequest(t, http.MethodGet, "/device-flow/tv-site/codes", nil)
	var list struct {
		Live            *int             `json:"live"`
		Unreadable      *int             `json:"unreadable"`
		Codes           []map[string]any `json:"codes"`
		UnreadableCodes []string         `json:"unreadable_codes"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil || list.Live == nil || *list.Live != 2 || len(list.Codes) != 2 ||
		list.Unreadable == nil || *list.Unreadable != 1 || !slices.Equal(list.UnreadableCodes, []string{"BBBB-CCCC"}) {
		t.Fatalf("GET codes with an unreadable record: %d %s; want 200, 2 live codes and BBBB-CCCC unreadable", status, body)
	}

	out, err := runDeviceFlowCommand(t, "list")
	t.Logf("caddy device-flow list:\n%q", out)
	if err != nil || !strings.Contains(out, good.userCode()) || !strings.Contains(out, "2 live codes; 1 unreadable") ||
		!regexp.MustCompile(`tv-site +BBBB-CCCC +- +- +unreadable`).MatchString(out) || !strings.Contains(out, "?[31m203.0.113.9?") {
		t.Fatalf("device-flow list: %v\n%s", err, out)
	}
	for _, r := range out {
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
			t.Fatalf("device-flow list printed the control character %U:\n%q", r, out)
		}
	}
}

// The admin API names a handler by its admin ID: two handlers of one
// config with one ID must have the same codes, or listing and denying
// would reach one of them for both. A name on two storages, or a name
// that is another handler's derived ID, does not load, and the error
// names both; the same name on the same storage shares on purpose, and a
// reload may move a name to another storage.
func TestAdminIDsApart(t *testing.T) {
	up := startUpstream(t)
	dirA, dirB := storeDir(t), storeDir(t)
	siteB := fmt.Sprintf("http://localhost:%d", freePort())
	config := func(storageA, extraA, storageB, extraB string) string {
		return siteConfigStorage(t, up, "badger "+storageA, extraA) + secondSite(siteB, up, "badger "+storageB, extraB)
	}
	// (The load error comes JSON-quoted.)
	for _, want := range []string{`admin ID \"tv\" but not the same codes`, `the handler named \"tv\" on badger ` + dirA, `the handler named \"tv\" on badger ` + dirB} {
		caddytest.AssertLoadError(t, config(dirA, "name tv", dirB, "name tv"), "caddyfile", want)
	}

	// Site A without a name, to learn its derived ID.
	startCaddy(t, config(dirA, "", dirA, "name other"))
	_, body := adminRequest(t, http.MethodGet, "/device-flow/", nil)
	var handlers []AdminHandler
	if err := json.Unmarshal(body, &handlers); err != nil {
		t.Fatal(err)
	}
	derived := ""
	for _, h := range handlers {
		if h.Name == "" {
			derived = h.Handler
		}
	}
	if derived == "" {
		t.Fatalf("no handler without a name: %s", body)
	}
	for _, want := range []string{`admin ID \"` + derived + `\"`, `the handler without a name in front of ` + up.AuthorizationEndpoint(), `the handler named \"` + derived + `\"`} {
		caddytest.AssertLoadError(t, config(dirA, "", dirA, "name "+derived), "caddyfile", want)
	}

	// Shared on purpose, then moved by a reload.
	clientID := up.Config().ClientID
	for _, dir := range []string{dirA, dirB} {
		startCaddy(t, config(dir, "name tv", dir, "name tv"))
		tv := newDevice(t, clientID, "openid")
		if status, out := devicePoll(t, siteB, clientID, tv.deviceCode()); status != http.StatusBadRequest || out["error"] != "authorization_pending" {
			t.Fatalf("on %s, A's code polled at B: %d %v, want it shared", dir, status, out)
		}
		if status, body := adminRequest(t, http.MethodGet, "/device-flow/tv/codes", nil); status != http.StatusOK || !strings.Contains(string(body), `"live":1,`) {
			t.Fatalf("on %s, the codes of tv: %d %s; want the one code", dir, status, body)
		}
	}
}

// AdminHandler is one handler in GET /device-flow/.
type AdminHandler struct {
	Handler string `json:"handler"`
	Name    string `json:"name"`
}
