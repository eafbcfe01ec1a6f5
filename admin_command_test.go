package deviceflow

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Everything `caddy device-flow list` prints of what the admin API
// answers goes through one printable filter: user codes read from Redis
// keys, issued_to, client_id, scope, the guess limits' addresses (read
// from counter keys) and the handler's ID.
func TestAdminListPrintsOnlyPrintable(t *testing.T) {
	const esc = "\x1b]0;owned\x07\x1b[2J\u202e\x9b"
	var out bytes.Buffer
	codeRow(&out, "tv"+esc, flow.CodeInfo{
		UserCode: "BCDF" + esc, ClientID: "tv" + esc, ClientName: "TV" + esc, Scope: "openid" + esc,
		Status: "pending" + esc, IssuedTo: "203.0.113.9" + esc, Polled: true, LastPoll: time.Now(),
	})
	tableRow(&out, "tv"+esc, "BBBB"+esc, "-", "-", "unreadable")
	for _, off := range []bool{false, true} {
		out.WriteString(guessLimitsLine("tv"+esc, flow.GuessLimits{
			Off: off, Total: 9, TotalLimit: 5, TotalInForce: true, PerAddress: 3,
			Addresses: []flow.AddressGuesses{{Address: "192.0.2.7" + esc, Guesses: 9, InForce: true}},
		}) + "\n")
	}
	for _, r := range out.String() {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
			t.Fatalf("printed the control character %U:\n%q", r, out.String())
		}
	}
	for _, want := range []string{"BCDF?]0;owned", "203.0.113.9?", "192.0.2.7?", "BBBB?"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%q", want, out.String())
		}
	}
}
