package integration

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The device-code phishing defences as Caddy runs them, with the
// addresses of devices and people simulated as a trusted proxy's
// X-Forwarded-For: the Caddyfile's issue_from and code_networks act on
// Caddy's client addresses, their events reach Caddy's metrics, and the
// audit events a Caddy log that includes http.handlers.device_flow.audit,
// with the handler's name. What the defences do is flow's TestIssueFrom
// and TestCodeNetworks.
func TestPhishingDefences(t *testing.T) {
	up := startUpstream(t)
	auditFile := filepath.Join(storeDir(t), "audit.log")
	global := "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n" +
		"\tlog siem {\n\t\tinclude http.handlers.device_flow.audit\n\t\toutput file " + auditFile + "\n\t\tformat json\n\t}"
	startCaddy(t, withGlobalOptions(siteConfig(t, up, "name phish-site\n\t\tissue_from 192.0.2.0/24\n\t\tcode_networks 2"), global))
	before := scrapeMetrics(t)
	clientID := up.Config().ClientID
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	askCode := func(ip string) (int, map[string]any) {
		t.Helper()
		form := url.Values{"client_id": {clientID}, "scope": {"openid"}}
		status, _, body := rawRequest(t, http.MethodPost, "/device/code", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), from(ip))
		var out map[string]any
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("/device/code answered %d with non-JSON %q", status, body)
		}
		return status, out
	}

	// Trusted networks.
	if status, out := askCode("203.0.113.5"); status != http.StatusForbidden || out["error"] != "unauthorized_client" {
		t.Fatalf("a device off issue_from: %d %v, want 403 unauthorized_client", status, out)
	}
	status, auth := askCode("192.0.2.10")
	if status != http.StatusOK {
		t.Fatalf("a device on issue_from: %d %v", status, auth)
	}
	tv := &device{t: t, clientID: clientID, auth: auth}

	// Limited-use codes: two networks open it, the third locks it.
	for i, ip := range []string{"198.51.100.1", "198.51.101.1", "198.51.102.1"} {
		status, _, body := guess(t, tv.userCode(), ip)
		if locked := status == http.StatusForbidden && isPage(body, "error"); locked != (i == 2) {
			t.Fatalf("open %d from %s: %d, locked %v", i, ip, status, locked)
		}
	}

	after := scrapeMetrics(t)
	for event, want := range map[string]float64{"issue_refused": 1, "code_locked": 1, "code_issued": 1} {
		if got := after[eventSeries(event)] - before[eventSeries(event)]; got != want {
			t.Errorf("%s moved by %v, want %v", eventSeries(event), got, want)
		}
	}

	// The audit log.
	f, err := os.Open(auditFile)
	if err != nil {
		t.Fatalf("the audit log was not written: %v", err)
	}
	defer f.Close()
	var events []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if e["logger"] != "http.handlers.device_flow.audit" || e["handler"] != "phish-site" {
			t.Errorf("audit line from logger %v, handler %v: %s", e["logger"], e["handler"], sc.Text())
		}
		events = append(events, e["msg"].(string))
		if e["msg"] == "code_locked" && (e["device_ip"] != "192.0.2.10" || e["person_ip"] != "198.51.102.1" || e["user_code"] != tv.userCode()) {
			t.Errorf("code_locked: %s", sc.Text())
		}
	}
	if got, want := strings.Join(events, " "), "issue_refused code_issued code_opened code_opened code_locked"; got != want {
		t.Errorf("audit events %q, want %q", got, want)
	}
}
