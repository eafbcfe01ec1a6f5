package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// popupPage is another site's page with a harmless looking button: one
// click opens a popup, which the page then sends to the device flow's
// confirmation link with each of its codes in turn (a cross-origin
// window's location may be set by its opener), a second apart, and last
// to a harmless page. Only the first navigation follows the click.
const popupPage = `<!doctype html><body>
<button id="go">Watch the video</button>
<script>
window.done = false;
const site = %q, codes = %s;
document.getElementById("go").onclick = async () => {
	const w = window.open("about:blank", "promo");
	for (const code of codes) {
		w.location = site + "/device?code=" + encodeURIComponent(code);
		await new Promise(r => setTimeout(r, 700));
	}
	w.close();
	window.done = true;
};
</script></body>`

// Red team, in real Chromium: another site's page spends its visitor's
// guesses by navigating a popup through wrong codes, no embedding
// needed, so the visitor then following a link with the right code is
// refused ("too many attempts") for the rest of the window.
func TestOtherSitesPopupCannotSpendTheVisitorsGuesses(t *testing.T) {
	tab := chromeTab{t: t, ctx: newChromium(t), shots: screenshotDir(t)}
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, "guess_limit 2 per 15m"))
	live := newDevice(t, up.Config().ClientID, "openid")

	// 127.0.0.1 is another site than localhost (testSite).
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, popupPage, testSite, `["CCCC-CCCC","DDDD-DDDD","FFFF-FFFF"]`)
	}))
	t.Cleanup(other.Close)
	tab.do(chromedp.Navigate(other.URL), chromedp.Click(chromedp.CSS(`#go`)))
	ctx, cancel := context.WithTimeout(tab.ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.done`, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("the other site's popup did not finish: %v", err)
	}

	// The visitor follows a link with the live code (a navigation).
	tab.do(chromedp.Navigate(testSite + "/device?code=" + url.QueryEscape(live.userCode())))
	tab.waitPage("confirm")
}
