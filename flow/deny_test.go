package flow_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The confirmation page names the client and shows the code, so the person
// can tell it is not theirs; Deny ends the authorization: the person sees
// the denied page and the device hears access_denied.
func TestDenyAtConfirmation(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
		c.Clients = map[string]flow.Client{"tv": {Name: "Living-room TV"}}
	}})
	auth := h.newCode("192.0.2.1", "tv")
	userCode := auth["user_code"].(string)
	b := personBrowser()
	confirm := h.openFrom(b, "192.0.2.2", userCode)
	if !confirm.isPage("confirm") || !strings.Contains(confirm.body, "Living-room TV") || !strings.Contains(confirm.body, userCode) {
		t.Fatalf("the confirmation page must show the client and the code: %d\n%s", confirm.status, confirm.body)
	}
	form := url.Values{"csrf": {formToken(t, confirm.body)}, "user_code": {userCode}, "action": {"deny"}}
	denied := h.do(b, "192.0.2.2", http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
	if denied.status != http.StatusOK || !denied.isPage("denied") {
		t.Fatalf("Deny: %d, want the denied page\n%s", denied.status, denied.body)
	}
	h.pollWants(auth["device_code"].(string), "tv", flow.ErrAccessDenied)
}
