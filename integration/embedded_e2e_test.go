package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// otherSitePage is a page of another site that makes its visitor's browser
// load user codes from the device flow: as images of /device/qr (which
// exist only for live codes), as images and no-cors fetches of the
// confirmation link. window.results says, per request, whether the page
// could tell anything ("load") or not ("error").
const otherSitePage = `<!doctype html><body><script>
window.results = {};
const site = %q, codes = %s;
for (const code of codes) {
	for (const [name, path] of [["qr", "/device/qr?user_code="], ["page", "/device?code="]]) {
		const img = new Image();
		img.onload = () => { window.results[name + " img " + code] = "load"; };
		img.onerror = () => { window.results[name + " img " + code] = "error"; };
		img.src = site + path + encodeURIComponent(code);
	}
	fetch(site + "/device?code=" + encodeURIComponent(code), {mode: "no-cors"}).then(
		() => { window.results["page fetch " + code] = "answered"; },
		() => { window.results["page fetch " + code] = "error"; });
}
</script></body>`

// In a real browser, another site's page cannot test codes through its
// visitors: its image of a live code's QR fails as a wrong code's would,
// and none of its requests counts against the visitor, who then follows a
// link with a right code and gets the confirmation page although the page
// loaded more wrong codes than guess_limit allows.
func TestOtherSitesCannotTestCodesThroughABrowser(t *testing.T) {
	tab := chromeTab{t: t, ctx: newChromium(t), shots: screenshotDir(t)}
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, "guess_limit 2 per 15m"))
	live := newDevice(t, up.Config().ClientID, "openid")

	// 127.0.0.1 is another site than localhost (testSite).
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes, _ := json.Marshal(r.URL.Query()["code"])
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, otherSitePage, testSite, codes)
	}))
	t.Cleanup(other.Close)
	visit := func(codes ...string) map[string]string {
		t.Helper()
		tab.do(chromedp.Navigate(other.URL + "?" + url.Values{"code": codes}.Encode()))
		settled := fmt.Sprintf(`Object.keys(window.results).length === %d`, 3*len(codes))
		ctx, cancel := context.WithTimeout(tab.ctx, 10*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](settled, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			t.Fatalf("the other site's requests did not settle: %v (%v)", err, eval[map[string]string](tab, `window.results`))
		}
		return eval[map[string]string](tab, `window.results`)
	}
	// Probing a live code: its QR image must fail as a wrong code's does.
	for request, result := range visit(live.userCode()) {
		if strings.Contains(request, " img ") && result != "error" {
			t.Errorf("%s: %s; the other site could tell this code is live", request, result)
		}
	}
	// Loading more wrong codes than guess_limit, as the visitor.
	visit("CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF")

	// The visitor follows a link with the live code (a navigation).
	tab.do(chromedp.Navigate(testSite + "/device?code=" + url.QueryEscape(live.userCode())))
	tab.waitPage("confirm")
}
