package flow_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// countingObserver counts the flow's events, as the Prometheus metrics do.
type countingObserver struct {
	mu     sync.Mutex
	events map[string]int
}

func (o *countingObserver) Event(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.events == nil {
		o.events = make(map[string]int)
	}
	o.events[name]++
}

func (*countingObserver) Upstream(string, string, time.Duration) {}

func (o *countingObserver) count(name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.events[name]
}

// observed sets up a harness config with a counting observer and an
// audit logger whose entries the test can read.
func observed(cfg *flow.Config) (*countingObserver, *observer.ObservedLogs) {
	obs := new(countingObserver)
	core, audit := observer.New(zap.DebugLevel)
	cfg.Observer, cfg.Audit = obs, zap.New(core)
	return obs, audit
}

// auditEvents are the audit entries with that message.
func auditEvents(logs *observer.ObservedLogs, event string) []observer.LoggedEntry {
	return logs.FilterMessage(event).AllUntimed()
}

// openFrom is a person at ip opening a code's confirmation page in
// browser b.
func (h *harness) openFrom(b *http.Client, ip, userCode string) answer {
	h.t.Helper()
	return h.do(b, ip, http.MethodGet, "/device?code="+url.QueryEscape(userCode), "", "")
}

// approveFrom walks a person at ip through the confirmation page, the
// upstream and back; visited collects every URL the browser was sent to.
func (h *harness) approveFrom(b *http.Client, ip, userCode string, visited *[]*url.URL) answer {
	h.t.Helper()
	b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		*visited = append(*visited, req.URL)
		return nil
	}
	defer func() { b.CheckRedirect = nil }()
	confirm := h.openFrom(b, ip, userCode)
	if !confirm.isPage("confirm") {
		h.t.Fatalf("confirmation page expected, got %d:\n%s", confirm.status, confirm.body)
	}
	form := url.Values{"csrf": {formToken(h.t, confirm.body)}, "user_code": {userCode}, "action": {"approve"}}
	return h.do(b, ip, http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
}

// pollFrom is one device_code poll from ip.
func (h *harness) pollFrom(ip, deviceCode, clientID string) answer {
	h.t.Helper()
	return h.post(ip, "/device/token", url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode},
		"client_id":   {clientID},
	})
}

// normalized is a display user code without its dash, as records hold it.
func normalized(userCode string) string { return strings.ReplaceAll(userCode, "-", "") }
