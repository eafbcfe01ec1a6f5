package flow_test

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Every code that finds no pending authorization — malformed, unknown,
// expired, already used, approved, denied — gets the same answer, by link
// and by form: the same status and the same page byte for byte but for
// what was typed (and the form's CSRF token), so a guesser learns nothing
// of which codes exist.
func TestWrongCodesAllLookAlike(t *testing.T) {
	const lifetime = 10 * time.Minute
	h := newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) {
		c.ExpiresIn = lifetime
		c.Limits = flow.Limits{GuessesPerIP: 50}
	}})
	client := h.up.ClientID
	userCode := func(auth map[string]any) string { return auth["user_code"].(string) }

	// expired: issued a lifetime before the lookups; the rest a minute before.
	expired := h.newCode("198.51.100.1", client)
	h.clock.Advance(lifetime - time.Minute)
	used := h.newCode("198.51.100.1", client)
	if done := h.approve(personBrowser(), userCode(used), nil); !done.isPage("success") {
		t.Fatalf("approve: %d\n%s", done.status, done.body)
	}
	if status, out := h.poll(used["device_code"].(string), client); status != http.StatusOK {
		t.Fatalf("delivery: %d %v", status, out)
	}
	approved := h.newCode("198.51.100.1", client)
	if done := h.approve(personBrowser(), userCode(approved), nil); !done.isPage("success") {
		t.Fatalf("approve: %d\n%s", done.status, done.body)
	}
	denied := h.newCode("198.51.100.1", client)
	denier := personBrowser()
	confirm := h.do(denier, "", http.MethodGet, "/device?code="+url.QueryEscape(userCode(denied)), "", "")
	deny := url.Values{"csrf": {formToken(t, confirm.body)}, "user_code": {userCode(denied)}, "action": {"deny"}}
	if a := h.do(denier, "", http.MethodPost, "/device", "application/x-www-form-urlencoded", deny.Encode()); !a.isPage("denied") {
		t.Fatalf("deny: %d\n%s", a.status, a.body)
	}
	h.clock.Advance(time.Minute)

	wrong := []struct{ name, code string }{
		{"malformed", "!!-??"},
		{"too short", "BCDF-GHJ"},
		{"not base-20", "AEIO-U123"},
		{"unknown", "BBBB-BBBB"},
		{"unknown, spaced", "b b b b c c c c"},
		{"expired", userCode(expired)},
		{"already used", userCode(used)},
		{"approved", userCode(approved)},
		{"denied", userCode(denied)},
	}
	const ip = "192.0.2.9"
	person := personBrowser()
	csrf := formToken(t, h.do(person, ip, http.MethodGet, "/device", "", "").body)
	var first, firstName string
	for _, w := range wrong {
		for _, how := range []string{"link", "form"} {
			var a answer
			if how == "link" {
				a = h.do(person, ip, http.MethodGet, "/device?code="+url.QueryEscape(w.code), "", "")
			} else {
				form := url.Values{"csrf": {csrf}, "user_code": {w.code}, "action": {"lookup"}}
				a = h.do(person, ip, http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
			}
			if a.status != http.StatusBadRequest || !a.isPage("enter") {
				t.Fatalf("the %s code by %s: %d, want 400 and the entry page\n%s", w.name, how, a.status, a.body)
			}
			body := strings.ReplaceAll(a.body, template.HTMLEscapeString(w.code), "TYPED")
			body = strings.ReplaceAll(body, formToken(t, a.body), "CSRF")
			if first == "" {
				first, firstName = body, w.name+" by "+how
			} else if body != first {
				t.Fatalf("the %s code by %s is answered otherwise than the %s code:\n%s\n---\n%s", w.name, how, firstName, body, first)
			}
		}
	}
}
