package integration

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// A Redis at maxmemory (noeviction) refuses every new code: each request
// is answered 503 + Retry-After, Caddy stays up, and the log gets the
// outage's first failure and its end, not a line per request, even while
// the reads it still answers come in between.
func TestRedisFullLogsTheOutageNotEachRequest(t *testing.T) {
	srv := redistest.Start(t, redistest.Args("--maxmemory-policy", "noeviction"))
	up := startUpstream(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	config := siteConfigStorage(t, up, redisStorage(srv.URL), "limits off")
	config = strings.Replace(config, "{\n", "{\n\tlog {\n\t\toutput file "+logFile+"\n\t\tformat json\n\t}\n", 1)
	startCaddy(t, config)
	clientID := up.Config().ClientID
	newDevice(t, clientID, "openid") // the server secret is read

	if _, err := redistest.Do(srv.Addr, "CONFIG", "SET", "maxmemory", "1"); err != nil {
		t.Fatal(err)
	}
	// Devices asking for codes (writes, refused) and people looking codes
	// up (reads, which a full Redis still answers, then a refused count).
	const flood = 1000
	b := newBrowser(t)
	for i := range flood {
		status, out, header := postForm(t, "/device/code", url.Values{"client_id": {clientID}})
		if status != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" || header.Get("Retry-After") == "" {
			t.Fatalf("request %d with Redis full: %d %v", i, status, out)
		}
		if i%10 == 0 {
			// Answered from what Redis still does (400: no such code), or 503.
			if p := b.get(testSite + "/device?code=BCDF-GHJK"); p.status != http.StatusBadRequest && p.status != http.StatusServiceUnavailable {
				t.Fatalf("page %d with Redis full: %d", i, p.status)
			}
		}
	}
	if _, err := redistest.Do(srv.Addr, "CONFIG", "SET", "maxmemory", "0"); err != nil {
		t.Fatal(err)
	}
	newDevice(t, clientID, "openid") // room again: the outage ends

	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var failed, recovered int
	for _, line := range strings.Split(string(logged), "\n") {
		switch {
		case strings.Contains(line, `"msg":"device flow store failed"`):
			failed++
		case strings.Contains(line, `"msg":"device flow store recovered"`):
			recovered++
		}
	}
	if failed != 1 || recovered != 1 {
		t.Fatalf("%d refused requests logged %d failures and %d recoveries, want 1 and 1:\n%s", flood, failed, recovered, logged)
	}
}
