package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestRealBrowserStalePage: a confirmation page left open while the person
// approves in another tab of the same browser (Approve starts a new
// session, so the page's form is stale, as after going Back to a page the
// browser kept). Its Approve says what happened and offers its code; that
// code then goes through.
func TestRealBrowserStalePage(t *testing.T) {
	first := chromeTab{t: t, ctx: newChromium(t), shots: screenshotDir(t)}
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	clientID := up.Config().ClientID
	left, other := newDevice(t, clientID, "openid"), newDevice(t, clientID, "openid")

	first.do(chromedp.Navigate(left.auth["verification_uri_complete"].(string)))
	first.waitPage("confirm")
	ctx, cancel := chromedp.NewContext(first.ctx) // a second tab, same cookies
	defer cancel()
	second := chromeTab{t: t, ctx: ctx, shots: first.shots}
	second.do(chromedp.Navigate(other.auth["verification_uri_complete"].(string)))
	second.waitPage("confirm")
	second.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	second.waitPage("success")

	first.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	first.waitPage("enter")
	if text := eval[string](first, `document.body.innerText`); !strings.Contains(text, "This page was already used") {
		t.Fatalf("Approve on the stale page says:\n%s", text)
	}
	first.shot("page-used")
	if typed := eval[string](first, `document.getElementById("user_code").value`); typed != left.userCode() {
		t.Fatalf("the entry page offers %q, want the page's code %s", typed, left.userCode())
	}
	first.do(chromedp.Click(chromedp.CSS(`button[value="lookup"]`)))
	first.waitPage("confirm")
	first.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	first.waitPage("success")
	if status, tokens := left.poll(); status != http.StatusOK || tokens["access_token"] == nil {
		t.Fatalf("the device of the stale page did not get its tokens: %d %v", status, tokens)
	}
}

// TestRealBrowserBackAfterSignIn: Back from the success page. Chromium
// loads the confirmation page again (pages are no-store), and its code is
// used by now: the page says that a code just approved has connected the
// device, rather than only that it did not work.
func TestRealBrowserBackAfterSignIn(t *testing.T) {
	tab := chromeTab{t: t, ctx: newChromium(t), shots: screenshotDir(t)}
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")
	tab.do(chromedp.Navigate(tv.auth["verification_uri_complete"].(string)))
	tab.waitPage("confirm")
	tab.do(chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	tab.waitPage("success")
	tab.do(chromedp.NavigateBack())
	tab.waitPage("enter")
	if text := eval[string](tab, `document.body.innerText`); !strings.Contains(text, "If you have just approved it, your device is connected") {
		t.Fatalf("Back after signing in shows:\n%s", text)
	}
}
