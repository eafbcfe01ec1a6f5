package flow_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A whole life of several codes against mockoidc, with every audit event
// and its fields checked, and then every secret that went by (device
// codes, tokens, the client secret, states, authorization codes, PKCE
// verifiers, cookies, CSRF tokens) looked for in everything that was
// logged, audit log and main log alike.
func TestAuditEvents(t *testing.T) {
	var audit *observer.ObservedLogs
	h := newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) {
		_, audit = observed(c)
		c.IssueFrom = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		c.Limits = flow.Limits{Off: true}
		c.Place = func(ip string) string { // the person's network only
			if strings.HasPrefix(ip, "203.0.113.") {
				return "Person City, XX"
			}
			return ""
		}
	}})
	const (
		deviceIP = "198.51.100.7"
		pollIP   = "198.51.100.8" // the device polls from another address
		personIP = "203.0.113.9"
		subject  = "audit-subject-42"
	)
	client := h.up.ClientID
	h.up.QueueUser(&mockoidc.MockUser{Subject: subject, Email: "a@example.com"})
	var secrets []string
	var visited []*url.URL

	// Issued, opened, approved, delivered, refreshed.
	auth := h.newCode(deviceIP, client)
	userCode, deviceCode := auth["user_code"].(string), auth["device_code"].(string)
	secrets = append(secrets, deviceCode)
	person := personBrowser()
	if done := h.approveFrom(person, personIP, userCode, &visited); !done.isPage("success") {
		t.Fatalf("approval: %d\n%s", done.status, done.body)
	}
	a := h.pollFrom(pollIP, deviceCode, client)
	if a.status != http.StatusOK {
		t.Fatalf("poll: %d %s", a.status, a.body)
	}
	tokens := a.json(t)
	for _, name := range []string{"access_token", "refresh_token", "id_token"} {
		s, _ := tokens[name].(string)
		if s == "" {
			t.Fatalf("no %s from the upstream: %v", name, tokens)
		}
		secrets = append(secrets, s)
	}
	a = h.post(deviceIP, "/device/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tokens["refresh_token"].(string)}, "client_id": {client}})
	if a.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	for name, v := range a.json(t) {
		if s, ok := v.(string); ok && strings.HasSuffix(name, "_token") {
			secrets = append(secrets, s)
		}
	}

	// Denied by the person.
	denied := h.newCode(deviceIP, client)
	secrets = append(secrets, denied["device_code"].(string))
	confirm := h.openFrom(person, personIP, denied["user_code"].(string))
	csrf := formToken(t, confirm.body)
	secrets = append(secrets, csrf)
	form := url.Values{"csrf": {csrf}, "user_code": {denied["user_code"].(string)}, "action": {"deny"}}
	if a := h.do(person, personIP, http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode()); a.status != http.StatusOK {
		t.Fatalf("deny: %d", a.status)
	}

	// Locked: opened from four networks.
	locked := h.newCode(deviceIP, client)
	secrets = append(secrets, locked["device_code"].(string))
	for _, ip := range []string{"192.0.2.1", "192.0.3.1", "192.0.4.1", "192.0.5.1"} {
		h.openFrom(http.DefaultClient, ip, locked["user_code"].(string))
	}

	// Denied by the operator.
	operated := h.newCode(deviceIP, client)
	secrets = append(secrets, operated["device_code"].(string))
	if _, err := h.svc.DenyCode(context.Background(), operated["user_code"].(string)); err != nil {
		t.Fatal(err)
	}

	// Refused: not on the trusted network.
	if a := h.post("192.0.2.66", "/device/code", url.Values{"client_id": {client}}); a.status != http.StatusForbidden {
		t.Fatalf("issue off the trusted network: %d", a.status)
	}

	// Every event, with its fields.
	want := []struct {
		event  string
		level  zapcore.Level
		fields map[string]any
	}{
		{flow.AuditCodeIssued, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": userCode, "device_ip": deviceIP, "scope": "openid"}},
		{flow.AuditCodeOpened, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": userCode, "device_ip": deviceIP, "person_ip": personIP, "person_place": "Person City, XX"}},
		// The person is not on the device's network (proximity warn, the default).
		{flow.AuditProximityMismatch, zapcore.WarnLevel, map[string]any{"client_id": client, "user_code": userCode, "device_ip": deviceIP, "person_ip": personIP, "person_place": "Person City, XX", "proximity": "warn", "refused": false}},
		{flow.AuditCodeApproved, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": userCode, "device_ip": deviceIP, "person_ip": personIP, "person_place": "Person City, XX", "sub": subject}},
		{flow.AuditTokensDelivered, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": userCode, "device_ip": deviceIP, "person_ip": personIP, "person_place": "Person City, XX", "sub": subject, "poll_ip": pollIP}},
		{flow.AuditRefreshRelayed, zapcore.InfoLevel, map[string]any{"client_id": client, "device_ip": deviceIP, "sub": subject}},
		{flow.AuditCodeIssued, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": denied["user_code"], "device_ip": deviceIP, "scope": "openid"}},
		{flow.AuditCodeOpened, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": denied["user_code"], "device_ip": deviceIP, "person_ip": personIP, "person_place": "Person City, XX"}},
		{flow.AuditCodeDenied, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": denied["user_code"], "device_ip": deviceIP, "person_ip": personIP, "person_place": "Person City, XX", "by": "person"}},
		{flow.AuditCodeIssued, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": locked["user_code"], "device_ip": deviceIP, "scope": "openid"}},
		{flow.AuditCodeOpened, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": locked["user_code"], "device_ip": deviceIP, "person_ip": "192.0.2.1"}},
		{flow.AuditCodeOpened, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": locked["user_code"], "device_ip": deviceIP, "person_ip": "192.0.3.1"}},
		{flow.AuditCodeOpened, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": locked["user_code"], "device_ip": deviceIP, "person_ip": "192.0.4.1"}},
		{flow.AuditCodeLocked, zapcore.WarnLevel, map[string]any{"client_id": client, "user_code": locked["user_code"], "device_ip": deviceIP, "person_ip": "192.0.5.1",
			"networks": []any{"192.0.2.0/24", "192.0.3.0/24", "192.0.4.0/24", "192.0.5.0/24"}}},
		{flow.AuditCodeIssued, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": operated["user_code"], "device_ip": deviceIP, "scope": "openid"}},
		{flow.AuditCodeDenied, zapcore.InfoLevel, map[string]any{"client_id": client, "user_code": operated["user_code"], "device_ip": deviceIP, "by": "operator"}},
		{flow.AuditIssueRefused, zapcore.WarnLevel, map[string]any{"client_id": client, "device_ip": "192.0.2.66"}},
	}
	got := audit.AllUntimed()
	for i, w := range want {
		if i >= len(got) {
			t.Fatalf("audit event %d: none, want %s", i, w.event)
		}
		g := got[i]
		if fields := g.ContextMap(); g.Message != w.event || g.Level != w.level || !sameJSON(fields, w.fields) {
			t.Errorf("audit event %d: %s %s %v\nwant %s %s %v", i, g.Level, g.Message, fields, w.level, w.event, w.fields)
		}
	}
	for _, g := range got[min(len(got), len(want)):] {
		t.Errorf("unexpected audit event %s %v", g.Message, g.ContextMap())
	}

	// No secret anywhere in what was logged.
	secrets = append(secrets, h.up.ClientSecret)
	secrets = append(secrets, h.up.Verifiers()...)
	for _, u := range visited {
		for _, name := range []string{"state", "code", "code_challenge"} {
			if v := u.Query().Get(name); v != "" {
				secrets = append(secrets, v)
			}
		}
	}
	site, _ := url.Parse(h.srv.URL)
	for _, c := range person.Jar.Cookies(site) {
		secrets = append(secrets, c.Value)
	}
	if len(secrets) < 15 {
		t.Fatalf("only %d secrets collected: the test lost track of some", len(secrets))
	}
	logged := dumpLogs(t, audit) + dumpLogs(t, h.logs)
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("secret %q is too short to look for", s)
		}
		if strings.Contains(logged, s) || strings.Contains(logged, base64.RawURLEncoding.EncodeToString([]byte(s))) {
			t.Errorf("a secret (%.12s…) is in the logs", s)
		}
	}
}

// sameJSON compares what two values say in JSON.
func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// dumpLogs is every entry, message and fields, as JSON lines.
func dumpLogs(t *testing.T, logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.AllUntimed() {
		line, err := json.Marshal(map[string]any{"logger": e.LoggerName, "msg": e.Message, "fields": e.ContextMap()})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// The subject is read from the ID token's payload, and from nothing else.
func TestSubjectOf(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	resp := func(idToken string) []byte {
		b, _ := json.Marshal(map[string]any{"access_token": "at", "id_token": idToken})
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"an ID token", resp(jwt(`{"sub":"248289761001","aud":"tv"}`)), "248289761001"},
		{"padded base64", resp(strings.Replace(jwt(`{"sub":"ab"}`), ".c2ln", "==.c2ln", 1)), "ab"},
		{"no ID token", []byte(`{"access_token":"at"}`), ""},
		{"not JSON", []byte(`access_token=at`), ""},
		{"nothing", nil, ""},
		{"encrypted (JWE)", resp("a.b.c.d.e"), ""},
		{"payload not base64", resp("a.!!!.c"), ""},
		{"payload not JSON", resp(jwt("sub")), ""},
		{"sub not a string", resp(jwt(`{"sub":42}`)), ""},
		{"sub too long", resp(jwt(`{"sub":"` + strings.Repeat("x", 256) + `"}`)), ""},
		{"control characters", resp(jwt(`{"sub":"a\nb"}`)), "a b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := flow.SubjectOf(tc.in); got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzSubjectOf: any token response from the upstream reads without a
// panic, to a short subject without control characters.
func FuzzSubjectOf(f *testing.F) {
	f.Add([]byte(`{"id_token":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"}`))
	f.Add([]byte(`{"id_token":"a.b.c"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sub := flow.SubjectOf(b)
		if len(sub) > 255+len("…") || strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("subject %q", sub)
		}
	})
}
