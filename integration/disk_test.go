package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
)

// mountTmpfs mounts a tmpfs of the given size (mount's syntax: "24m") on
// a new folder, unmounted when the test is done. Where mounting is not
// allowed the test is skipped, saying why, except in CI, which must run it.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := storeDir(t)
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs (needs root, or CAP_SYS_ADMIN in a container): %v: %s", err, bytes.TrimSpace(out))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// twoSites is a Caddy with the device flow on site (limits off, so that a
// flood reaches the store) and a plain site on other, which stands for
// the other sites a Caddy serves; its admin endpoint (with metrics) is on
// admin.
type twoSites struct {
	up                 *upstream
	clientID           string
	admin, site, other string
}

func newTwoSites(t *testing.T) *twoSites {
	up := startUpstream(t)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort()) }
	return &twoSites{up: up, clientID: up.Config().ClientID, admin: addr(), site: "http://" + addr(), other: "http://" + addr()}
}

// config is the Caddyfile; storage is the rest of the storage line.
func (c *twoSites) config(storage string) string {
	cfg := instanceConfig(c.site, c.up, storage)
	cfg = strings.Replace(cfg, "admin off", "admin "+c.admin+"\n\tmetrics", 1)
	cfg = strings.Replace(cfg, "guess_limit 2 per 15m", "limits off", 1)
	return cfg + c.other + " {\n\trespond \"other site\" 200\n}\n"
}

func (c *twoSites) start(t *testing.T, storage string) *caddyProcess {
	return startCaddyProcess(t, c.config(storage), c.site+"/device")
}

// issue asks site for a device code and returns the status and answer.
func issue(site, clientID string) (int, map[string]any, http.Header, error) {
	resp, err := http.PostForm(site+"/device/code", url.Values{"client_id": {clientID}, "scope": {"openid"}})
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
		if err := json.Unmarshal(body, &out); err != nil {
			return resp.StatusCode, nil, nil, fmt.Errorf("non-JSON answer %d %q", resp.StatusCode, body)
		}
	}
	return resp.StatusCode, out, resp.Header, nil
}

// get is the status of a GET, 0 when there is no answer.
func get(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// approveAt walks a person through at site: entry page, confirmation,
// the upstream, the callback.
func approveAt(t *testing.T, site, userCode string) page {
	t.Helper()
	b := newBrowser(t)
	entry := b.get(site + "/device")
	confirm := b.postPage(site, "/device", url.Values{"csrf": {entry.csrf(t)}, "user_code": {userCode}, "action": {"lookup"}})
	if !confirm.is("confirm") {
		t.Fatalf("confirmation page expected, got %d:\n%s", confirm.status, confirm.body)
	}
	return b.postPage(site, "/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {userCode}, "action": {"approve"}})
}

// logLines counts the lines of the log that hold msg.
func logLines(t *testing.T, logPath, msg string) int {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), msg)
}

// The disk filling up under a flood of device codes: the free-space guard
// refuses new codes (503 + Retry-After) before Badger meets a full disk,
// Caddy and its other sites stay up, a code issued before completes its
// flow, and new codes come back with the space. Badger writes through
// memory maps: without the guard the process dies of SIGBUS.
func TestDiskFullKeepsCaddyUp(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and runs the caddy binary")
	}
	const minFree = 8 << 20
	fsDir := mountTmpfs(t, "24m")
	// The filler takes a third of the disk, so the flood is short; freeing
	// it is the operator making room.
	filler := filepath.Join(fsDir, "filler")
	if err := os.WriteFile(filler, bytes.Repeat([]byte{1}, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(fsDir, "db")
	c := newTwoSites(t)
	caddy := c.start(t, fmt.Sprintf("badger %s {\n\t\t\tmin_free 8MiB\n\t\t}", db))
	site, other, clientID := c.site, c.other, c.clientID

	status, early, _, err := issue(site, clientID)
	if err != nil || status != http.StatusOK {
		t.Fatalf("a code before the flood: %d %v %v", status, early, err)
	}

	// Flood until the guard refuses, then two seconds more; watch the
	// free space the while.
	var issued, refused atomic.Int64
	var minSeen atomic.Uint64
	minSeen.Store(1 << 62)
	var stop atomic.Bool
	var refusedAt atomic.Int64
	var wg sync.WaitGroup
	var floodErr atomic.Value
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				status, out, header, err := issue(site, clientID)
				switch {
				case err != nil:
					floodErr.Store(err)
					stop.Store(true)
				case status == http.StatusOK:
					issued.Add(1)
				case status == http.StatusServiceUnavailable && out["error"] == "temporarily_unavailable" && header.Get("Retry-After") != "":
					refused.Add(1)
					refusedAt.CompareAndSwap(0, time.Now().UnixNano())
				default:
					floodErr.Store(fmt.Errorf("answer %d %v", status, out))
					stop.Store(true)
				}
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			if free, err := badgerstore.FreeSpace(fsDir); err == nil && free < minSeen.Load() {
				minSeen.Store(free)
			}
			if at := refusedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) > 2*time.Second {
				stop.Store(true)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	timeout := time.AfterFunc(3*time.Minute, func() { floodErr.Store(fmt.Errorf("no refusal in 3 minutes")); stop.Store(true) })
	wg.Wait()
	timeout.Stop()
	if err, _ := floodErr.Load().(error); err != nil {
		out, _ := os.ReadFile(caddy.log)
		t.Fatalf("flood: %v (%d issued, %d refused)\n%s", err, issued.Load(), refused.Load(), out)
	}
	t.Logf("flood: %d codes issued, %d refused; least free space seen %d KiB", issued.Load(), refused.Load(), minSeen.Load()>>10)
	if refused.Load() == 0 {
		t.Fatal("nothing was refused")
	}
	if minSeen.Load() < minFree/4 {
		t.Errorf("free space fell to %d KiB, below a quarter of min_free", minSeen.Load()>>10)
	}

	// Caddy is up: its other site answers, and so does the device flow.
	if s := get(other); s != http.StatusOK {
		t.Fatalf("the other site answered %d", s)
	}
	if s, out, _, err := issue(site, clientID); err != nil || s != http.StatusServiceUnavailable {
		t.Fatalf("a new code while low: %d %v %v", s, out, err)
	}
	metrics := "http://" + c.admin + "/metrics"
	if !strings.Contains(fetch(t, metrics), fmt.Sprintf(`caddy_device_flow_badger_disk_low{dir=%q} 1`, db)) {
		t.Errorf("the metrics do not show the disk low:\n%s", grepLines(fetch(t, metrics), "badger_disk"))
	}

	// The code issued before completes: pending, approved, tokens.
	deviceCode, userCode := early["device_code"].(string), early["user_code"].(string)
	if s, out := devicePoll(t, site, clientID, deviceCode); s != http.StatusBadRequest || out["error"] != "authorization_pending" {
		t.Fatalf("polling the early code: %d %v", s, out)
	}
	if done := approveAt(t, site, userCode); !done.is("success") {
		t.Fatalf("approving the early code: %d\n%s", done.status, done.body)
	}
	if s, out := devicePoll(t, site, clientID, deviceCode); s != http.StatusOK || out["access_token"] == nil {
		t.Fatalf("the early code's tokens: %d %v", s, out)
	}

	// Space comes back: new codes again, by themselves.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, out, _, err := issue(site, clientID)
		if err == nil && s == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new code 10 s after space was freed: %d %v %v", s, out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(fetch(t, metrics), fmt.Sprintf(`caddy_device_flow_badger_disk_low{dir=%q} 0`, db)) {
		t.Errorf("the metrics do not show the disk back:\n%s", grepLines(fetch(t, metrics), "badger_disk"))
	}
	low := logLines(t, caddy.log, "the Badger folder's filesystem is nearly full")
	back := logLines(t, caddy.log, "the Badger folder's filesystem has room again")
	if low != 1 || back != 1 {
		t.Errorf("logged the disk low %d times and back %d times, want once each", low, back)
	}
	t.Logf("the flow logged the store failed %d times and recovered %d times",
		logLines(t, caddy.log, `"msg":"device flow store failed"`), logLines(t, caddy.log, `"msg":"device flow store recovered"`))
	if n := logLines(t, caddy.log, "fatal error"); n != 0 || caddy.cmd.ProcessState != nil {
		t.Fatal("caddy crashed")
	}
}

func fetch(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// closeBound is how long Caddy may take to stop when its Badger folder
// is gone: the store gives up closing after 10 s (badgerstore's
// closeTimeout), and Caddy's own shutdown takes a moment.
const closeBound = 15 * time.Second

// The Badger folder removed under a running Caddy: Badger cannot flush
// its memtable any more, and closing it would wait for ever. A reload
// that moves the store elsewhere and a SIGTERM each finish within the
// bound, and the new folder serves meanwhile.
func TestRemovedStoreFolderNeverHangsCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the caddy binary")
	}
	c := newTwoSites(t)
	first, second := storeDir(t), storeDir(t)
	caddy := c.start(t, "badger "+first)
	site, other, clientID := c.site, c.other, c.clientID
	issueSome := func() {
		t.Helper()
		for range 20 {
			if s, out, _, err := issue(site, clientID); err != nil || s != http.StatusOK {
				t.Fatalf("device code: %d %v %v", s, out, err)
			}
		}
	}
	issueSome() // the memtable holds them: there is something to flush
	if err := os.RemoveAll(first); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	resp, err := http.Post("http://"+c.admin+"/load", "text/caddyfile", strings.NewReader(c.config("badger "+second)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK || took > closeBound {
		t.Fatalf("the reload answered %d after %s: %s", resp.StatusCode, took, body)
	}
	t.Logf("the reload took %s", took.Round(time.Millisecond))
	issueSome()
	if s := get(other); s != http.StatusOK {
		t.Fatalf("the other site answered %d after the reload", s)
	}

	if err := os.RemoveAll(second); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM to exit: %s", caddy.terminate(t, closeBound).Round(time.Millisecond))
	if n := logLines(t, caddy.log, "the Badger database did not close in time"); n != 2 {
		t.Errorf("%d lines saying the database did not close in time, want 2 (the reload, the exit)", n)
	}
}

// kill -9 in the middle of a flood of device codes: every code answered
// 200 before the kill is pending after the restart. Badger's write-ahead
// log reaches the page cache before the answer leaves.
func TestKill9UnderWriteFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the caddy binary")
	}
	c := newTwoSites(t)
	storage := "badger " + storeDir(t)
	first := c.start(t, storage)
	site, clientID := c.site, c.clientID

	const want = 300
	var mu sync.Mutex
	var codes []string
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				s, out, _, err := issue(site, clientID)
				if err != nil {
					return // killed
				}
				if s != http.StatusOK {
					t.Errorf("device code: %d %v", s, out)
					return
				}
				mu.Lock()
				codes = append(codes, out["device_code"].(string))
				enough := len(codes) == want
				mu.Unlock()
				if enough {
					first.kill() // the others are mid-request
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	c.start(t, storage)
	for i, code := range codes {
		if s, out := devicePoll(t, site, clientID, code); s != http.StatusBadRequest || out["error"] != "authorization_pending" {
			t.Fatalf("code %d of %d answered 200 before kill -9: %d %v", i, len(codes), s, out)
		}
	}
	t.Logf("%d codes answered before kill -9, all pending after the restart", len(codes))
}

// caddy validate on the config a Caddy is running: the database is that
// Caddy's (locked), and validating must neither need it nor make a
// folder; a max_live_codes that cannot fit the disk is a warning.
func TestValidateWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the caddy binary")
	}
	c := newTwoSites(t)
	running := c.start(t, "badger "+storeDir(t))

	validate := func(config string) string {
		t.Helper()
		cmd := exec.Command(buildCaddy(t), "validate", "--config", config, "--adapter", "caddyfile")
		cmd.Env = running.env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Valid configuration") {
			t.Fatalf("caddy validate %s: %v\n%s", config, err, out)
		}
		return string(out)
	}
	validate(running.config)

	missing := filepath.Join(storeDir(t), "not", "yet")
	huge := strings.Replace(c.config("badger "+missing), "limits off", "max_live_codes 1000000000000", 1)
	config := filepath.Join(storeDir(t), "Caddyfile")
	if err := os.WriteFile(config, []byte(huge), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := validate(config); !strings.Contains(out, "max_live_codes will not fit") {
		t.Errorf("no warning about max_live_codes:\n%s", out)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Fatalf("caddy validate made the folder: %v", err)
	}
}
