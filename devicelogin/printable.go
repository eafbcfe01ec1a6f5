package devicelogin

import (
	"strings"
	"unicode"
)

// printable makes a server-supplied string safe to print on a terminal:
// control characters (escape sequences that could move the cursor, rewrite
// the screen, set the window title or the clipboard) become "?".
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || unicode.Is(unicode.Bidi_Control, r) {
			return '?'
		}
		return r
	}, s)
}

// Printable is printable for other commands (`caddy device-flow`): what
// they print that came from a device (client_id, scope) gets the same
// treatment.
func Printable(s string) string { return printable(s) }
