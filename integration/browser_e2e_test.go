package integration

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-device-flow/caddy-device-flow/internal/testgeoip"
)

// The real-browser test: headless Chromium walks the pages as a person
// would (typing, clicking, following the upstream's redirects with its own
// cookies and CSP), and leaves a screenshot of each page in SCREENSHOT_DIR
// (docs/screenshots/ holds a committed set).

// chromiumPath finds Debian's chromium; without it the test is skipped,
// except in CI, where a missing browser must not pass unnoticed.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI must run the real-browser test: apt-get install -y chromium (scripts/test.sh does)")
	}
	t.Skip("chromium is not installed; skipping the real-browser test (apt-get install -y chromium, or run bash scripts/test.sh)")
	return ""
}

// newChromium starts a headless Chromium with a fresh profile and a phone
// sized viewport; it ends with the test.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root otherwise
	}
	// A bound, so a browser that hangs fails the test instead of the run.
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 90*time.Second)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelTimeout() })
	if err := chromedp.Do(tab, chromedp.EmulateViewport(420, 640)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return tab
}

// screenshotDir is where the pictures go: $SCREENSHOT_DIR, or a temporary
// folder.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromeTab is a tab with the test's helpers.
type chromeTab struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

func (c chromeTab) do(steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.t.Fatal(err)
	}
}

// waitPage waits until the tab shows the named page (body[data-page]).
func (c chromeTab) waitPage(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`body[data-page="`+name+`"]`))); err != nil {
		shown, _ := chromedp.Run(c.ctx, chromedp.Evaluate[string](`document.body ? document.body.dataset.page || document.body.innerText.slice(0, 300) : ""`))
		where, _ := chromedp.Run(c.ctx, chromedp.Location())
		c.t.Fatalf("page %q expected at %s, the tab shows %q: %v", name, where, shown, err)
	}
}

// eval runs JavaScript in the page.
func eval[T any](c chromeTab, js string) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		c.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// shot saves the whole page as <name>.png, after checking it with axe.
func (c chromeTab) shot(name string) {
	c.t.Helper()
	c.axe(name)
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func TestRealBrowser(t *testing.T) {
	tab := chromeTab{t: t, ctx: newChromium(t), shots: screenshotDir(t)}
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, "guess_limit 2 per 15m"))
	clientID := up.Config().ClientID

	// The happy path: type the code as people do (lower case, no dash),
	// confirm, approve, pass the upstream, arrive at the success page.
	tv := newDevice(t, clientID, "openid profile email")
	tab.do(chromedp.Navigate(testSite + "/device"))
	tab.waitPage("enter")
	tab.shot("enter")
	typed := strings.ToLower(strings.ReplaceAll(tv.userCode(), "-", ""))
	tab.do(
		chromedp.SendKeys(chromedp.ID("user_code"), typed),
		chromedp.Click(chromedp.CSS(`button[value="lookup"]`)),
	)
	tab.waitPage("confirm")
	if shown := eval[string](tab, `document.querySelector(".code").textContent`); shown != tv.userCode() {
		t.Fatalf("confirmation page shows code %q, want %q", shown, tv.userCode())
	}
	// The QR image is served and allowed by the page's CSP.
	qrLoaded := `(() => { const i = document.querySelector("figure.qr img"); return !!i && i.complete && i.naturalWidth > 0 })()`
	if _, err := chromedp.Run(tab.ctx, chromedp.Poll[bool](qrLoaded, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Fatalf("the QR image did not load on the confirmation page: %v", err)
	}
	tab.shot("confirm")
	tab.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	tab.waitPage("success")
	tab.shot("success")
	if status, tokens := tv.poll(); status != http.StatusOK || tokens["access_token"] == nil {
		t.Fatalf("the device did not get its tokens: %d %v", status, tokens)
	}

	// Dark mode and German, by emulation, on the entry page.
	light := eval[string](tab, `getComputedStyle(document.body).backgroundColor`)
	dark := []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}
	if _, err := chromedp.Call(tab.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: dark}); err != nil {
		t.Fatal(err)
	}
	tab.do(chromedp.Navigate(testSite + "/device"))
	tab.waitPage("enter")
	if bg := eval[string](tab, `getComputedStyle(document.body).backgroundColor`); bg == light {
		t.Errorf("dark mode: the background stayed %s", bg)
	}
	tab.shot("enter-dark")
	if _, err := chromedp.Call(tab.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatal(err)
	}
	setAcceptLanguage(t, tab, "de-DE,de;q=0.9")
	tab.do(chromedp.Navigate(testSite + "/device"))
	tab.waitPage("enter")
	if lang := eval[string](tab, `document.documentElement.lang`); lang != "de" {
		t.Errorf("Accept-Language de: the page is in %q", lang)
	}
	tab.shot("enter-de")
	setAcceptLanguage(t, tab, "")

	// Deny on the confirmation page (reached by verification_uri_complete).
	refused := newDevice(t, clientID, "openid")
	tab.do(chromedp.Navigate(refused.auth["verification_uri_complete"].(string)))
	tab.waitPage("confirm")
	tab.do(chromedp.Click(chromedp.CSS(`button[value="deny"]`)))
	tab.waitPage("denied")
	tab.shot("denied")
	if _, out := refused.poll(); out["error"] != "access_denied" {
		t.Fatalf("device after deny: %v", out)
	}

	// The upstream answers the sign-in with an error.
	failing := newDevice(t, clientID, "openid")
	up.DenyNextLogin("server_error")
	tab.do(chromedp.Navigate(failing.auth["verification_uri_complete"].(string)))
	tab.waitPage("confirm")
	tab.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	tab.waitPage("error")
	tab.shot("error")

	// The code is no longer pending when the person comes back from the
	// upstream (denied meanwhile from another browser; a code that expired
	// meanwhile shows the same page, tested in flow's TestExpiry): the
	// sign-in is started by a scripted browser, whose session the tab
	// takes over before opening the callback.
	late := newDevice(t, clientID, "openid")
	b := newBrowser(t)
	callback := lastRedirect(t, b, late)
	site, _ := url.Parse(testSite)
	for _, c := range b.client.Jar.Cookies(site) {
		if _, err := chromedp.Call(tab.ctx, network.SetCookie, network.SetCookieParams{Name: c.Name, Value: c.Value, URL: testSite + "/"}); err != nil {
			t.Fatal(err)
		}
	}
	other := newBrowser(t)
	confirm := other.get(late.auth["verification_uri_complete"].(string))
	if denied := other.post("/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {late.userCode()}, "action": {"deny"}}); !denied.is("denied") {
		t.Fatalf("deny from another browser: %d\n%s", denied.status, denied.body)
	}
	tab.do(chromedp.Navigate(callback))
	tab.waitPage("expired")
	tab.shot("expired")

	// Too many wrong codes from this address (the site allows 2).
	for _, wrong := range []string{"BBBB-BBBB", "CCCC-CCCC"} {
		tab.do(chromedp.Navigate(testSite + "/device?code=" + wrong))
		tab.waitPage("enter")
	}
	tab.do(chromedp.Navigate(testSite + "/device?code=DDDD-DDDD"))
	tab.waitPage("toomany")
	tab.shot("toomany")
}

// setAcceptLanguage makes the tab send the header ("" for its default).
func setAcceptLanguage(t *testing.T, tab chromeTab, value string) {
	t.Helper()
	headers := network.Headers{}
	if value != "" {
		headers["Accept-Language"] = value
	}
	setHeaders(t, tab, headers)
}

// setHeaders makes the tab send these headers with every request, and
// no other extra ones.
func setHeaders(t *testing.T, tab chromeTab, headers network.Headers) {
	t.Helper()
	if _, err := chromedp.Call(tab.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: headers}); err != nil {
		t.Fatal(err)
	}
}

// axeScript is axe-core, the accessibility checker, installed by
// scripts/test.sh:
//
//	(cd integration/testdata/axe && npm install --no-save axe-core@4)
const axeScript = "testdata/axe/node_modules/axe-core/axe.min.js"

// axe checks the page against WCAG 2.1 A and AA and axe's best
// practices; every violation fails the test. Without axe-core installed
// the check is skipped, except in CI.
func (c chromeTab) axe(name string) {
	c.t.Helper()
	src, err := os.ReadFile(axeScript)
	if err != nil {
		if os.Getenv("CI") != "" {
			c.t.Fatalf("axe-core is not installed in CI (scripts/test.sh installs it): %v", err)
		}
		c.t.Logf("axe-core is not installed, page %s not checked: (cd integration/testdata/axe && npm install --no-save axe-core@4)", name)
		return
	}
	eval[bool](c, string(src)+";true")
	found, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
		resultTypes: ["violations"],
	}).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
		nodes: v.nodes.map(n => n.target.join(" "))})), null, 1))`, chromedp.EvalAwaitPromise))
	if err != nil {
		c.t.Fatalf("axe on page %s: %v", name, err)
	}
	if found != "[]" {
		c.t.Errorf("axe: accessibility violations on page %s:\n%s", name, found)
	}
}

// The proximity pages in a real browser: a person on another network than
// the device sees the warning (visible, axe-clean) above Approve and Deny,
// which look exactly alike; with proximity require, Approve leads to the
// refusal page. The tab's requests claim their network through a trusted
// proxy's X-Forwarded-For; the device's come from Berlin.
func TestRealBrowserProximity(t *testing.T) {
	tab := chromeTab{t: t, ctx: newChromium(t), shots: screenshotDir(t)}
	up := startUpstream(t)
	clientID := up.Config().ClientID
	mmdb := testgeoip.Cities(t, t.TempDir())
	setHeaders(t, tab, network.Headers{"X-Forwarded-For": "203.0.113.9"})

	startCaddy(t, withGlobalOptions(siteConfig(t, up, "geoip "+mmdb), trustLoopback))
	tv := newDeviceFrom(t, clientID, "openid profile", "198.51.100.7")
	tab.do(chromedp.Navigate(tv.auth["verification_uri_complete"].(string)))
	tab.waitPage("confirm")
	tab.do(chromedp.WaitVisible(chromedp.ID("far")))
	warning := eval[string](tab, `document.getElementById("far").innerText`)
	for _, want := range []string{"not on your network", "198.51.100.x (Berlin, Germany)", "203.0.113.x (Paris, France)"} {
		if !strings.Contains(warning, want) {
			t.Errorf("the warning %q does not say %q", warning, want)
		}
	}
	// Asked for just now: how minutes and hours read is flow's
	// TestConfirmPageShowsWhereAndWhen.
	secondsAgo := regexp.MustCompile(`^[0-9]+ seconds? ago$`)
	if asked := eval[string](tab, `document.querySelector("dd.asked").innerText.replaceAll("\u00a0", " ")`); !secondsAgo.MatchString(asked) {
		t.Errorf("asked: %q", asked)
	}
	// Approve and Deny: the same size, colours, weight and border.
	same := eval[bool](tab, `(() => {
		const [a, d] = ["approve", "deny"].map(v => document.querySelector('button[value="' + v + '"]'));
		const props = ["width", "height", "background-color", "color", "font-weight", "font-size", "border-top-color", "border-top-width"];
		const sa = getComputedStyle(a), sd = getComputedStyle(d);
		return props.every(p => sa.getPropertyValue(p) === sd.getPropertyValue(p));
	})()`)
	if !same {
		t.Error("Approve and Deny do not look alike")
	}
	tab.shot("confirm-far")
	setHeaders(t, tab, network.Headers{"X-Forwarded-For": "203.0.113.9", "Accept-Language": "de"})
	tab.do(chromedp.Reload())
	tab.waitPage("confirm")
	tab.shot("confirm-far-de")
	setHeaders(t, tab, network.Headers{"X-Forwarded-For": "203.0.113.9"})
	tab.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	tab.waitPage("success") // warn: Approve still works

	startCaddy(t, withGlobalOptions(siteConfig(t, up, "geoip "+mmdb+"\n\t\tproximity require"), trustLoopback))
	tv = newDeviceFrom(t, clientID, "openid profile", "198.51.100.7")
	tab.do(chromedp.Navigate(tv.auth["verification_uri_complete"].(string)))
	tab.waitPage("confirm")
	tab.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	tab.waitPage("toofar")
	tab.shot("toofar")
	if _, out := tv.poll(); out["error"] != "authorization_pending" {
		t.Fatalf("the device after the refusal: %v", out)
	}
	// From the device's network, "Try again" leads back and Approve works.
	setHeaders(t, tab, network.Headers{"X-Forwarded-For": "198.51.100.20"})
	tab.do(chromedp.Click(chromedp.CSS(`a.button`)))
	tab.waitPage("confirm")
	if n := eval[int](tab, `document.querySelectorAll("#far").length`); n != 0 {
		t.Error("a warning on the device's network")
	}
	tab.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	tab.waitPage("success")
}
