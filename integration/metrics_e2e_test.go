package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// scrapeMetrics reads Caddy's admin /metrics into series → value, the
// series written as in the text format: name{label="value",...}.
func scrapeMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func eventSeries(event string) string {
	return `caddy_device_flow_events_total{event="` + event + `"}`
}

func TestMetricsCountTheFlow(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	// The collectors live as long as the process and other tests move
	// them too, so the test compares before and after.
	before := scrapeMetrics(t)
	// What the flow below moves each event by; every event is there.
	// An expiry needs time to pass: flow's TestExpiry counts it.
	wantEvents := map[string]float64{
		"code_issued": 2, "slow_down": 1, "approved": 1, "delivered": 1,
		"denied": 1, "wrong_code": 1, "expired": 0,
		"guess_limited": 0, "issue_limited": 0,
	}
	for e := range wantEvents {
		if _, ok := before[eventSeries(e)]; !ok {
			t.Errorf("%s is not exported before it first happens", eventSeries(e))
		}
	}

	// One approved and delivered code, with a slow_down on the way: polls
	// one after the other, the first one's immediate repeat forgiven.
	tv := newDevice(t, up.Config().ClientID, "openid")
	var answers []any
	for len(answers) < 3 && (len(answers) == 0 || answers[len(answers)-1] != "slow_down") {
		_, out := tv.poll()
		answers = append(answers, out["error"])
	}
	if answers[len(answers)-1] != "slow_down" {
		t.Fatalf("three polls in a row: %v, want a slow_down", answers)
	}
	if done := newBrowser(t).approve(tv.userCode()); !done.is("success") {
		t.Fatalf("approve: %d\n%s", done.status, done.body)
	}
	if status, out := tv.poll(); status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, out)
	}
	// One denied code, one wrong code.
	denied := newDevice(t, up.Config().ClientID, "openid")
	b := newBrowser(t)
	confirm := b.get(denied.auth["verification_uri_complete"].(string))
	b.post("/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {denied.userCode()}, "action": {"deny"}})
	if wrong := b.get(testSite + "/device?code=BBBB-BBBB"); !wrong.is("enter") || wrong.status != http.StatusBadRequest {
		t.Fatalf("wrong code: %d", wrong.status)
	}
	// A refresh the upstream refuses: an upstream error.
	status, _, _ := postForm(t, "/device/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {"not-a-refresh-token"}, "client_id": {up.Config().ClientID},
	})
	if status < 400 || status >= 500 {
		t.Fatalf("refused refresh: %d", status)
	}

	after := scrapeMetrics(t)
	moved := func(series string) float64 { return after[series] - before[series] }
	for event, want := range wantEvents {
		if got := moved(eventSeries(event)); got != want {
			t.Errorf("%s moved by %v, want %v", eventSeries(event), got, want)
		}
	}
	for series, want := range map[string]float64{
		`caddy_device_flow_upstream_duration_seconds_count{op="token",outcome="ok"}`:      1,
		`caddy_device_flow_upstream_duration_seconds_count{op="refresh",outcome="error"}`: 1,
		`caddy_device_flow_upstream_errors_total{op="refresh",outcome="error"}`:           1,
	} {
		if got := moved(series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	if _, ok := after[`caddy_device_flow_upstream_errors_total{op="token",outcome="ok"}`]; ok {
		t.Error("successful upstream calls must not count as errors")
	}
}

func TestMetricsCountLimits(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, "guess_limit 1 per 1m\nissue_limit 1 per 1m"))
	before := scrapeMetrics(t)

	newDevice(t, up.Config().ClientID, "openid")
	if status, out, _ := postForm(t, "/device/code", url.Values{"client_id": {up.Config().ClientID}}); status != http.StatusTooManyRequests {
		t.Fatalf("second code within the issue limit: %d %v", status, out)
	}
	b := newBrowser(t)
	b.get(testSite + "/device?code=BBBB-BBBB")
	if limited := b.get(testSite + "/device?code=CCCC-CCCC"); !limited.is("toomany") {
		t.Fatalf("guess limit: %d\n%s", limited.status, limited.body)
	}

	after := scrapeMetrics(t)
	for event, want := range map[string]float64{"issue_limited": 1, "guess_limited": 1, "wrong_code": 1, "code_issued": 1} {
		if got := after[eventSeries(event)] - before[eventSeries(event)]; got != want {
			t.Errorf("%s moved by %v, want %v", eventSeries(event), got, want)
		}
	}
}
