package deviceflow

import (
	"bytes"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
		{"expires_in too short", ok + "\t\texpires_in 5s", "expires_in 5s is too short (at least 10s)", 0},
		{"interval past expires_in", ok + "\t\texpires_in 1m\n\t\tinterval 2m", "interval 2m0s must be at least 1s and shorter than expires_in", 0},
		{"unknown storage", ok + "\t\tstorage floppy", "http.device_flow.storage.floppy", 5},
		{"storage twice", ok + "\t\tstorage badger /a\n\t\tstorage badger /b", "storage given twice", 6},
		{"badger with two dirs", ok + "\t\tstorage badger /a /b", "wrong argument count", 5},
		{"client without id", ok + "\t\tclient", "wrong argument count", 5},
		{"client twice", ok + "\t\tclient tv\n\t\tclient tv", `client "tv" is configured twice`, 6},
		{"client unknown field", ok + "\t\tclient tv {\n\t\t\tcolour blue\n\t\t}", `unrecognized client subdirective "colour"`, 6},
		{"reserved name in the endpoint's query", "authorization_endpoint https://idp.example.com/authorize?tenant=a&scope=admin\n\t\ttoken_endpoint https://idp.example.com/token", `authorization_endpoint: its query: authorization parameter "scope" is set by the flow`, 3},
		{"look-alike in the endpoint's query", "authorization_endpoint https://idp.example.com/authorize?state%5B%5D=x\n\t\ttoken_endpoint https://idp.example.com/token", `"state[]" may be read as "state"`, 3},
		{"authorize_param look-alike", ok + "\t\tauthorize_param \" state\" x", `" state" may be read as "state"`, 5},
		{"server_secret short", ok + "\t\tserver_secret tooshort", "server_secret is too short: 8 bytes, at least 32", 5},
		{"server_secret twice over", ok + "\t\tserver_secret a b", "wrong argument count", 5},
		{"client secret empty", ok + "\t\tclient tv {\n\t\t\tsecret \"\"\n\t\t}", "client tv: secret is empty", 6},
		{"client scopes empty", ok + "\t\tclient tv {\n\t\t\tscopes\n\t\t}", "wrong argument count", 6},
		{"guess_limit syntax", ok + "\t\tguess_limit 10", "guess_limit <n> per <duration>", 5},
		{"guess_limit count", ok + "\t\tguess_limit ten per 1m", "not a positive whole number", 5},
		{"issue_limit window", ok + "\t\tissue_limit 10 per forever", "not a positive duration", 5},
		{"guess_limit zero", ok + "\t\tguess_limit 0 per 1m", "guess_limit needs a positive count and window, not 0 per 1m0s", 5},
		{"refresh_limit negative window", ok + "\t\trefresh_limit 5 per -1m", "refresh_limit needs a positive count and window, not 5 per -1m0s", 5},
		{"max_live_codes", ok + "\t\tmax_live_codes 0", "not a positive whole number", 5},
		{"limits on", ok + "\t\tlimits on", "limits must be off", 5},
		{"templates twice", ok + "\t\ttemplates /a /b", "wrong argument count", 5},
		{"name without a value", ok + "\t\tname", "wrong argument count", 5},
		{"name twice over", ok + "\t\tname a b", "wrong argument count", 5},
		{"typo", ok + "\t\tintervall 5s", `unrecognized device_flow subdirective "intervall"; did you mean interval?`, 5},
		{"typo in a client", ok + "\t\tclient tv {\n\t\t\tscope openid\n\t\t}", `unrecognized client subdirective "scope"; did you mean scopes?`, 6},
		{"hsts without a value", ok + "\t\thsts", "hsts <max-age>|off", 5},
		{"hsts bad max-age", ok + "\t\thsts forever", `hsts: "forever" is not a positive duration`, 5},
		{"hsts zero", ok + "\t\thsts 0s", "not a positive duration", 5},
		{"hsts unknown option", ok + "\t\thsts 365d includeSubDomains", `hsts: unknown option "includeSubDomains"`, 5},
		{"hsts off with options", ok + "\t\thsts off preload", "hsts off takes nothing after it", 5},
		{"hsts preload alone", ok + "\t\thsts 365d preload", "preload needs include_subdomains", 5},
		{"hsts preload too short", ok + "\t\thsts 30d include_subdomains preload", "at least one year", 5},
		{"hsts with a block", ok + "\t\thsts 365d {\n\t\t\tx\n\t\t}", "hsts takes no block", 6},
		{"authorize_param without value", ok + "\t\tauthorize_param prompt", "authorize_param <name> <value>", 5},
		{"authorize_param with a block", ok + "\t\tauthorize_param prompt consent {\n\t\t\tx\n\t\t}", "authorize_param takes no block", 6},
		{"authorize_param state", ok + "\t\tauthorize_param state x", `authorization parameter "state" is set by the flow`, 5},
		{"authorize_param scope", ok + "\t\tauthorize_param scope openid", `"scope" is set by the flow: it is what the device asks for`, 5},
		{"authorize_param response_mode", ok + "\t\tauthorize_param response_mode form_post", `"response_mode" is set by the flow`, 5},
		{"client authorize_param redirect_uri", ok + "\t\tclient tv {\n\t\t\tauthorize_param redirect_uri https://evil.example\n\t\t}", `"redirect_uri" is set by the flow`, 6},
		{"issue_from empty", ok + "\t\tissue_from", "issue_from wants one or more networks", 5},
		{"issue_from bad CIDR", ok + "\t\tissue_from 192.0.2.0/24 10.0.0.0/33", `issue_from: "10.0.0.0/33" is not a network in CIDR form`, 5},
		{"issue_from host name", ok + "\t\tissue_from office.example.com", `"office.example.com" is neither an IP address nor a network`, 5},
		{"issue_from with a block", ok + "\t\tissue_from 10.0.0.0/8 {\n\t\t\tx\n\t\t}", "issue_from takes no block", 6},
		{"client issue_from bad", ok + "\t\tclient tv {\n\t\t\tissue_from 10.0.0.1/8x\n\t\t}", `"10.0.0.1/8x" is not a network`, 6},
		{"code_networks negative", ok + "\t\tcode_networks -1", `code_networks: "-1" is not a whole number or off`, 5},
		{"code_networks word", ok + "\t\tcode_networks many", `code_networks: "many" is not a whole number or off`, 5},
		{"code_networks two", ok + "\t\tcode_networks 3 4", "wrong argument count", 5},
		{"unknown proximity", ok + "\t\tproximity strict", `proximity must be off or warn or require, not "strict"`, 5},
		{"proximity without a mode", ok + "\t\tproximity", "wrong argument count", 5},
		{"client unknown proximity", ok + "\t\tclient tv {\n\t\t\tproximity on\n\t\t}", `proximity must be off or warn or require, not "on"`, 6},
		{"proximity_prefix one number", ok + "\t\tproximity_prefix 24", "proximity_prefix <IPv4 bits> <IPv6 bits>", 5},
		{"proximity_prefix too long", ok + "\t\tproximity_prefix 33 56", `IPv4 bits 1-32 and IPv6 bits 1-128, not 33 and 56`, 5},
		{"proximity_prefix not a number", ok + "\t\tproximity_prefix 24 /56", `not "24" and "/56"`, 5},
		{"client proximity_prefix zero", ok + "\t\tclient tv {\n\t\t\tproximity_prefix 0 0\n\t\t}", "IPv4 bits 1-32", 6},
		{"geoip without a path", ok + "\t\tgeoip", "wrong argument count", 5},
		{"proximty typo", ok + "\t\tproximty warn", "did you mean proximity?", 5},
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
	for _, want := range []string{`"handler": "device_flow"`, `"name": "tv-demo"`, `demo-access-token`} {
		if !strings.Contains(got, want) {
			t.Errorf("the example's JSON lacks %s", want)
		}
	}
}

// TestValidateAuthorizeParams: JSON gets the same refusals as the
// Caddyfile, naming the client when it is the client's.
func TestValidateAuthorizeParams(t *testing.T) {
	h := Handler{
		Issuer:          "https://idp.example.com",
		AuthorizeParams: map[string][]string{"prompt": {"consent"}, "code_challenge_method": {"plain"}},
		Clients: map[string]*ClientConfig{
			"tv":      {AuthorizeParams: map[string][]string{"client_id": {"other"}}},
			"encoder": nil,
		},
	}
	err := h.Validate()
	for _, want := range []string{
		`authorize_params: authorization parameter "code_challenge_method" is set by the flow`,
		`client tv: authorize_params: authorization parameter "client_id" is set by the flow`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %s", err, want)
		}
	}
	h = Handler{
		AuthorizationEndpoint: "https://idp.example.com/authorize?request_uri=https://evil.example",
		TokenEndpoint:         "https://idp.example.com/token",
		AuthorizeParams:       map[string][]string{"scope[]": {"admin"}},
		Clients:               map[string]*ClientConfig{"tv": {}},
	}
	err = h.Validate()
	for _, want := range []string{
		`authorization_endpoint: its query: authorization parameter "request_uri" is set by the flow`,
		`authorize_params: authorization parameter "scope[]" may be read as "scope"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %s", err, want)
		}
	}
	h.AuthorizationEndpoint = "{env.AUTHORIZE_URL}" // checked once resolved, by flow.New
	h.AuthorizeParams = map[string][]string{"access_type": {"offline"}}
	h.Clients["tv"].AuthorizeParams = map[string][]string{"audience": {"{env.AUDIENCE}"}}
	if err := h.Validate(); err != nil {
		t.Errorf("Validate() = %v for allowed names", err)
	}
}

// TestValidateProximity: JSON gets the Caddyfile's refusals.
func TestValidateProximity(t *testing.T) {
	h := Handler{
		Issuer:          "https://idp.example.com",
		Proximity:       "sometimes",
		ProximityPrefix: &ProximityPrefix{IPv4: 24},
		Clients:         map[string]*ClientConfig{"tv": {Proximity: "strict", ProximityPrefix: &ProximityPrefix{IPv4: 40, IPv6: 56}}},
	}
	err := h.Validate()
	for _, want := range []string{
		`proximity must be off, warn or require, not "sometimes"`,
		`client tv: proximity must be off, warn or require, not "strict"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %s", err, want)
		}
	}
	h.Proximity, h.Clients["tv"].Proximity = "require", "off"
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "not 24 and 0") || !strings.Contains(err.Error(), "client tv: proximity_prefix") {
		t.Errorf("Validate() = %v, want both prefixes refused", err)
	}
	h.ProximityPrefix, h.Clients["tv"].ProximityPrefix = &ProximityPrefix{IPv4: 32, IPv6: 64}, nil
	if err := h.Validate(); err != nil {
		t.Errorf("Validate() = %v for good settings", err)
	}
}

func TestClosest(t *testing.T) {
	for _, tc := range []struct{ word, want string }{
		{"intervall", "interval"},
		{"Interval", "interval"},
		{"tokenauth", "token_auth"},
		{"guess_limt", "guess_limit"},
		{"guess_limit_totl", "guess_limit_total"},
		{"authorise_param", "authorize_param"},
		{"authorize_params", "authorize_param"},
		{"isuer", "issuer"},
		{"nme", "name"},
		{"limit", "limits"},
		{"colour", ""},  // no subdirective is a typo of it
		{"secrets", ""}, // a client's subdirective, two edits from anything here
		{"x", ""},
		{"", ""},
	} {
		if got := closest(tc.word, siteSubdirectives); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"interval", "intervall", 1}, {"flaw", "lawn", 2}, {"über", "uber", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestSubdirectiveLists: the suggestion lists name exactly the cases of
// the parser's switches, so a new subdirective cannot be left out of them.
func TestSubdirectiveLists(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "caddyfile.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	lists := map[string][]string{"UnmarshalCaddyfile": siteSubdirectives, "unmarshalClient": clientSubdirectives}
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || lists[fn.Name.Name] == nil {
			continue
		}
		var cases []string
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok {
						name, _ := strconv.Unquote(lit.Value)
						cases = append(cases, name)
					}
				}
			}
			return true
		})
		want := slices.Sorted(slices.Values(lists[fn.Name.Name]))
		if slices.Sort(cases); !slices.Equal(cases, want) {
			t.Errorf("%s: the switch has %v, the list %v", fn.Name.Name, cases, want)
		}
		delete(lists, fn.Name.Name)
	}
	if len(lists) > 0 {
		t.Errorf("functions not found: %v", slices.Collect(maps.Keys(lists)))
	}
}

// TestReadmeIdentityProviders: every Caddyfile in README.md's "Using real
// identity providers" adapts without errors or warnings.
func TestReadmeIdentityProviders(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Using real identity providers\n")
	if !ok {
		t.Fatal("README.md has no section Using real identity providers")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	blocks := strings.Split(section, "```caddyfile\n")[1:]
	if len(blocks) < 5 {
		t.Fatalf("%d Caddyfile examples, want one per IdP", len(blocks))
	}
	for _, block := range blocks {
		caddyfile, _, _ := strings.Cut(block, "```")
		if got := adaptCaddyfile(t, caddyfile); !strings.Contains(got, `"handler": "device_flow"`) {
			t.Errorf("no device_flow handler from:\n%s", caddyfile)
		}
	}
}

// TestValidateNetworks: JSON gets the same refusals of issue_from and
// code_networks as the Caddyfile, naming the client when it is the
// client's.
func TestValidateNetworks(t *testing.T) {
	minus := -1
	h := Handler{
		Issuer:       "https://idp.example.com",
		IssueFrom:    []string{"192.0.2.0/24", "192.0.2.0/24/1"},
		CodeNetworks: &minus,
		Clients:      map[string]*ClientConfig{"kiosk": {IssueFrom: []string{"lobby"}}},
	}
	err := h.Validate()
	for _, want := range []string{
		`issue_from: "192.0.2.0/24/1" is not a network in CIDR form`,
		`client kiosk: issue_from: "lobby" is neither an IP address nor a network`,
		"code_networks must be 0 (off) or more, not -1",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %s", err, want)
		}
	}
	zero := 0
	h.IssueFrom, h.CodeNetworks = []string{"10.0.0.0/8", "2001:db8::1"}, &zero
	h.Clients["kiosk"].IssueFrom = []string{"192.0.2.7"}
	if err := h.Validate(); err != nil {
		t.Errorf("Validate() = %v for good networks", err)
	}
}

// TestPasteReadyCaddyfiles: every Caddyfile in README.md, and
// deploy/Caddyfile (compose.yaml's) with its variables set, adapts without
// errors or warnings, "not formatted" included: what a reader pastes,
// caddy validate takes without a word.
func TestPasteReadyCaddyfiles(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```caddyfile\n")[1:]
	for i, block := range blocks {
		caddyfile, _, _ := strings.Cut(block, "```")
		t.Run("README block "+strconv.Itoa(i+1), func(t *testing.T) {
			if got := adaptCaddyfile(t, caddyfile); !strings.Contains(got, `"handler"`) {
				t.Errorf("no handler from:\n%s", caddyfile)
			}
		})
	}
	t.Run("deploy/Caddyfile", func(t *testing.T) {
		for k, v := range map[string]string{"DEVICE_FLOW_SITE": "auth.example.com", "ISSUER": "https://sso.example.com/realms/main", "CLIENT_ID": "tv"} {
			t.Setenv(k, v)
		}
		raw, err := os.ReadFile("deploy/Caddyfile")
		if err != nil {
			t.Fatal(err)
		}
		got := adaptCaddyfile(t, string(raw))
		for _, want := range []string{`"handler": "device_flow"`, `"issuer": "https://sso.example.com/realms/main"`, `"secret": "{env.CLIENT_SECRET}"`} {
			if !strings.Contains(got, want) {
				t.Errorf("deploy/Caddyfile's JSON lacks %s:\n%s", want, got)
			}
		}
	})
}
