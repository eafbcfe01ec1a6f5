package deviceflow

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard" // the directives the golden files use besides ours
)

var updateGolden = flag.Bool("update", false, "rewrite the golden adapt files with the current output")

// TestCaddyfileAdapt checks testdata/caddyfile_adapt/*.caddyfiletest: a
// Caddyfile, a line of dashes, and the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, want, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatal("no ---------- line between the Caddyfile and the JSON")
			}
			got := adaptCaddyfile(t, caddyfile+"\n")
			if *updateGolden {
				os.WriteFile(file, []byte(caddyfile+"\n----------\n"+got+"\n"), 0o644)
				return
			}
			if strings.TrimSpace(want) != got {
				t.Errorf("adapted JSON differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", got, strings.TrimSpace(want))
			}
		})
	}
}

func adaptCaddyfile(t *testing.T, caddyfile string) string {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("warning: line %d: %s", w.Line, w.Message)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return pretty.String()
}

// TestCaddyfileErrors: every mistake an operator can make is a clear error
// that names the file and line.
func TestCaddyfileErrors(t *testing.T) {
	const ok = "authorization_endpoint https://idp.example.com/authorize\n\t\ttoken_endpoint https://idp.example.com/token\n"
	tests := []struct {
		name, block, want string
		line              int
	}{
		{"unknown subdirective", ok + "\t\tcolour blue", `unrecognized device_flow subdirective "colour"`, 5},
		{"argument on the directive", "", "wrong argument count", 2},
		{"no upstream", "expires_in 5m", "needs the upstream", 0},
		{"only one endpoint", "token_endpoint https://idp.example.com/token", "needs the upstream", 0},
		{"issuer and endpoints", ok + "\t\tissuer https://idp.example.com", "not both", 0},
		{"relative URL", "authorization_endpoint /authorize", "not an absolute http(s) URL", 3},
		{"ftp URL", "issuer ftp://idp.example.com", "not an absolute http(s) URL", 3},
		{"URL with fragment", "issuer https://idp.example.com/#x", "fragment", 3},
		{"URL missing", "issuer", "wrong argument count", 3},
		{"two URLs", "issuer https://a.example https://b.example", "wrong argument count", 3},
		{"bad duration", ok + "\t\texpires_in soon", `expires_in: "soon" is not a positive duration`, 5},
		{"negative duration", ok + "\t\tinterval -5s", "not a positive duration", 5},
		{"bad user_code", ok + "\t\tuser_code emoji", "user_code must be base20 or digits", 5},
		{"bad token_auth", ok + "\t\ttoken_auth jwt", "token_auth must be basic or post", 5},
		{"bad prefix", ok + "\t\tprefix oauth/", "prefix must start with /", 5},
		{"unknown storage", ok + "\t\tstorage floppy", "http.device_flow.storage.floppy", 5},
		{"storage twice", ok + "\t\tstorage badger /a\n\t\tstorage badger /b", "storage given twice", 6},
		{"badger with two dirs", ok + "\t\tstorage badger /a /b", "wrong argument count", 5},
		{"client without id", ok + "\t\tclient", "wrong argument count", 5},
		{"client twice", ok + "\t\tclient tv\n\t\tclient tv", `client "tv" is configured twice`, 6},
		{"client unknown field", ok + "\t\tclient tv {\n\t\t\tcolour blue\n\t\t}", `unrecognized client subdirective "colour"`, 6},
		{"client scopes empty", ok + "\t\tclient tv {\n\t\t\tscopes\n\t\t}", "wrong argument count", 6},
		{"guess_limit syntax", ok + "\t\tguess_limit 10", "guess_limit <n> per <duration>", 5},
		{"guess_limit count", ok + "\t\tguess_limit ten per 1m", "not a positive whole number", 5},
		{"issue_limit window", ok + "\t\tissue_limit 10 per forever", "not a positive duration", 5},
		{"max_live_codes", ok + "\t\tmax_live_codes 0", "not a positive whole number", 5},
		{"limits on", ok + "\t\tlimits on", "limits must be off", 5},
		{"templates twice", ok + "\t\ttemplates /a /b", "wrong argument count", 5},
		{"name without a value", ok + "\t\tname", "wrong argument count", 5},
		{"name twice over", ok + "\t\tname a b", "wrong argument count", 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caddyfile := "localhost {\n\tdevice_flow"
			if tc.name == "argument on the directive" {
				caddyfile += " extra {\n\t\t" + ok + "\t}\n}\n"
			} else {
				caddyfile += " {\n\t\t" + tc.block + "\n\t}\n}\n"
			}
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("no error for:\n%s", caddyfile)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.line > 0 && !strings.Contains(err.Error(), "Caddyfile:"+itoa(tc.line)) {
				t.Errorf("error %q does not name Caddyfile:%d", err, tc.line)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The example a newcomer runs first must adapt cleanly: no errors, and no
// "not formatted" warnings.
func TestExampleCaddyfile(t *testing.T) {
	raw, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	got := adaptCaddyfile(t, string(raw))
	for _, want := range []string{`"handler": "device_flow"`, `demo-access-token`} {
		if !strings.Contains(got, want) {
			t.Errorf("the example's JSON lacks %s", want)
		}
	}
}
