package templates

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/html"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

func mustNew(t *testing.T, dir string) *Pages {
	t.Helper()
	p, err := New(dir)
	if err != nil {
		t.Fatalf("New(%q): %v", dir, err)
	}
	return p
}

func render(t *testing.T, p *Pages, page string, d *flow.PageData) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.Render(&b, page, d); err != nil {
		t.Fatalf("Render(%s): %v", page, err)
	}
	return b.String()
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// parse parses a rendered page; it also fails the test on anything the
// pages must never contain.
func parse(t *testing.T, out string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatalf("html.Parse: %v", err)
	}
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func find(doc *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
	})
	return out
}

func byTag(tag string, kv ...string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		if n.Data != tag {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if v, ok := attr(n, kv[i]); !ok || v != kv[i+1] {
				return false
			}
		}
		return true
	}
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}

var urlAttrs = []string{"src", "href", "action", "srcset", "poster", "data", "formaction", "xlink:href", "background"}

// checkSelfContained fails on scripts, external resources and inline
// event handlers: the pages must work under the CSP with no JavaScript and
// nothing from elsewhere.
func checkSelfContained(t *testing.T, name, out string) {
	t.Helper()
	lower := strings.ToLower(out)
	for _, bad := range []string{"http://", "https://", "<script", "javascript:", "@import", "url(", "//fonts."} {
		if strings.Contains(lower, bad) {
			t.Errorf("%s contains %q", name, bad)
		}
	}
	walk(parse(t, out), func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("%s: <%s %s=...> event handler", name, n.Data, a.Key)
			}
			if slices.Contains(urlAttrs, a.Key) && (strings.HasPrefix(a.Val, "//") || strings.Contains(a.Val, ":")) {
				t.Errorf("%s: <%s %s=%q> is not a local path", name, n.Data, a.Key, a.Val)
			}
		}
		if n.Data == "link" || n.Data == "iframe" || n.Data == "object" || n.Data == "embed" {
			t.Errorf("%s: <%s> element", name, n.Data)
		}
	})
}

func TestEveryPageEveryLanguage(t *testing.T) {
	p := mustNew(t, "")
	if got := p.Languages(); !slices.Equal(got, []string{"en", "de", "fr"}) {
		t.Fatalf("Languages() = %v", got)
	}
	titles := map[string]string{}
	for _, lang := range p.Languages() {
		for _, page := range PageNames {
			for i, d := range samples(page) {
				d.AcceptLanguage = lang
				name := fmt.Sprintf("%s/%s#%d", lang, page, i)
				out := render(t, p, page, d)
				checkSelfContained(t, name, out)
				doc := parse(t, out)
				htmlEl := find(doc, byTag("html"))
				if l, _ := attr(htmlEl[0], "lang"); l != lang {
					t.Errorf("%s: <html lang=%q>", name, l)
				}
				if len(find(doc, byTag("meta", "name", "viewport"))) != 1 {
					t.Errorf("%s: no viewport meta", name)
				}
				if !strings.Contains(out, "prefers-color-scheme: dark") {
					t.Errorf("%s: no dark mode styles", name)
				}
				if h1 := find(doc, byTag("h1")); len(h1) != 1 || text(h1[0]) == "" {
					t.Errorf("%s: want one non-empty <h1>", name)
				}
				if len(find(doc, byTag("main"))) != 1 {
					t.Errorf("%s: no <main>", name)
				}
				title := text(find(doc, byTag("title"))[0])
				if i == 0 {
					titles[lang+"/"+page] = title
				}
				// Every form posts to FormAction with the CSRF token.
				for _, f := range find(doc, byTag("form")) {
					if m, _ := attr(f, "method"); m != "post" {
						t.Errorf("%s: form method %q", name, m)
					}
					if a, _ := attr(f, "action"); a != d.FormAction {
						t.Errorf("%s: form action %q, want %q", name, a, d.FormAction)
					}
					if len(find(f, byTag("input", "type", "hidden", "name", "csrf", "value", d.CSRF))) != 1 {
						t.Errorf("%s: form without the csrf field", name)
					}
				}
			}
		}
	}
	for _, page := range PageNames {
		for _, lang := range []string{"de", "fr"} {
			if titles[lang+"/"+page] == titles["en/"+page] {
				t.Errorf("%s in %s has the English title %q", page, lang, titles["en/"+page])
			}
		}
	}
}

func TestEnterPage(t *testing.T) {
	p := mustNew(t, "")
	d := &flow.PageData{UserCode: "bcdf-ghjk", CSRF: "tok", FormAction: "/device"}
	doc := parse(t, render(t, p, flow.PageEnter, d))
	in := find(doc, byTag("input", "name", "user_code"))
	if len(in) != 1 {
		t.Fatalf("want one user_code input, got %d", len(in))
	}
	want := map[string]string{
		"type": "text", "id": "user_code", "value": "bcdf-ghjk", "autocomplete": "one-time-code",
		"autocapitalize": "characters", "spellcheck": "false", "autofocus": "", "required": "",
	}
	for k, v := range want {
		if got, ok := attr(in[0], k); !ok || got != v {
			t.Errorf("input %s=%q (present %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := attr(in[0], "aria-invalid"); ok {
		t.Error("aria-invalid without an error")
	}
	if l := find(doc, byTag("label", "for", "user_code")); len(l) != 1 || text(l[0]) == "" {
		t.Error("no <label for=user_code>")
	}
	if len(find(doc, byTag("button", "type", "submit", "name", "action", "value", "lookup"))) != 1 {
		t.Error("no lookup button")
	}
	if len(find(doc, func(n *html.Node) bool { v, _ := attr(n, "role"); return v == "alert" })) != 0 {
		t.Error("alert without an error")
	}

	// Every kind of wrong code is "invalid_code": one message for all.
	d.Error = "invalid_code"
	doc = parse(t, render(t, p, flow.PageEnter, d))
	alert := find(doc, byTag("div", "role", "alert"))
	if len(alert) != 1 {
		t.Fatal("invalid_code: no alert")
	}
	first := text(alert[0])
	in = find(doc, byTag("input", "name", "user_code"))
	if v, _ := attr(in[0], "aria-invalid"); v != "true" {
		t.Error("no aria-invalid with an error")
	}
	if v, _ := attr(in[0], "aria-describedby"); !strings.Contains(v, "code-error") {
		t.Errorf("aria-describedby %q does not point at the error", v)
	}
	if v, _ := attr(in[0], "value"); v != d.UserCode {
		t.Errorf("typed code not kept: %q", v)
	}
	if !strings.Contains(first, "did not work") {
		t.Errorf("invalid_code message %q", first)
	}
	d.Error = "csrf"
	if out := render(t, p, flow.PageEnter, d); !strings.Contains(out, "open for too long") {
		t.Error("csrf message missing")
	}
}

func TestConfirmPage(t *testing.T) {
	p := mustNew(t, "")
	d := samples(flow.PageConfirm)[0]
	out := render(t, p, flow.PageConfirm, d)
	doc := parse(t, out)
	if c := find(doc, byTag("span", "class", "code")); len(c) != 1 || text(c[0]) != d.UserCode {
		t.Error("code not shown")
	}
	if !strings.Contains(out, "matches the one shown on your device") {
		t.Error("no check-the-code hint")
	}
	for _, s := range []string{d.ClientName, "ID: " + d.ClientID} {
		if !strings.Contains(text(doc), s) {
			t.Errorf("%q not shown", s)
		}
	}
	items := find(doc, byTag("li"))
	if len(items) != len(d.Scopes) {
		t.Errorf("%d scope items for %d scopes", len(items), len(d.Scopes))
	}
	for i, li := range items {
		if !strings.Contains(text(li), d.Scopes[i]) {
			t.Errorf("scope item %q does not name %q", text(li), d.Scopes[i])
		}
	}
	form := find(doc, byTag("form"))
	if len(form) != 1 {
		t.Fatalf("%d forms", len(form))
	}
	if len(find(form[0], byTag("input", "type", "hidden", "name", "user_code", "value", d.UserCode))) != 1 {
		t.Error("no hidden user_code")
	}
	for _, v := range []string{"approve", "deny"} {
		if len(find(form[0], byTag("button", "type", "submit", "name", "action", "value", v))) != 1 {
			t.Errorf("no %s button", v)
		}
	}
	img := find(doc, byTag("img", "src", d.QRPath))
	if len(img) != 1 {
		t.Fatal("no QR image")
	}
	if alt, _ := attr(img[0], "alt"); !strings.HasPrefix(alt, "QR code") {
		t.Errorf("QR alt %q", alt)
	}

	// No separate name, no scopes, no QR.
	d = samples(flow.PageConfirm)[3]
	out = render(t, p, flow.PageConfirm, d)
	if strings.Contains(out, "ID: ") || strings.Contains(out, "<img") || strings.Contains(out, "<li>") {
		t.Errorf("minimal confirm page shows ID, QR or scopes:\n%s", out)
	}
	if !strings.Contains(out, "no other access requested") {
		t.Error("no-scopes text missing")
	}
}

func TestErrorAndTooManyPages(t *testing.T) {
	p := mustNew(t, "")
	// Durations keep number and unit together with a no-break space.
	render := func(t *testing.T, p *Pages, page string, d *flow.PageData) string {
		return strings.ReplaceAll(render(t, p, page, d), "\u00a0", " ")
	}
	for _, e := range flow.ErrorKeys() {
		d := &flow.PageData{Error: e, ErrorDetail: "detail-" + e, StartOver: "/device"}
		doc := parse(t, render(t, p, flow.PageError, d))
		body := text(doc)
		if !strings.Contains(body, p.langs[0].cat.msgs["error."+e]) {
			t.Errorf("error %q: message missing", e)
		}
		if !strings.Contains(body, "detail-"+e) {
			t.Errorf("error %q: detail missing", e)
		}
		if len(find(doc, byTag("a", "href", "/device"))) != 1 {
			t.Errorf("error %q: no start-over link", e)
		}
	}
	out := render(t, p, flow.PageError, &flow.PageData{Error: "something_new"})
	if !strings.Contains(out, "An unexpected error occurred") {
		t.Error("unknown error key: no generic message")
	}
	out = render(t, p, flow.PageError, &flow.PageData{Error: "unavailable", RetryAfter: 30})
	if !strings.Contains(out, "try again in 30 seconds") {
		t.Error("unavailable: no retry time")
	}
	for secs, want := range map[int]string{
		1: "1 second", 45: "45 seconds", 60: "1 minute", 61: "2 minutes", 900: "15 minutes",
		7200: "120 minutes", 7201: "3 hours", 0: "try again later",
	} {
		out := render(t, p, flow.PageTooMany, &flow.PageData{RetryAfter: secs})
		if !strings.Contains(out, want) {
			t.Errorf("toomany RetryAfter=%d: no %q", secs, want)
		}
	}
	for lang, want := range map[string]string{"de": "15 Minuten", "fr": "15 minutes"} {
		out := render(t, p, flow.PageTooMany, &flow.PageData{RetryAfter: 900, AcceptLanguage: lang})
		if !strings.Contains(out, want) {
			t.Errorf("toomany in %s: no %q", lang, want)
		}
	}
	if out := render(t, p, flow.PageTooMany, &flow.PageData{RetryAfter: 1, AcceptLanguage: "fr"}); !strings.Contains(out, "1 seconde") {
		t.Error("French singular")
	}
}

func TestEscaping(t *testing.T) {
	p := mustNew(t, "")
	const x = `<script>alert(1)</script>"'><img src=x onerror=alert(1)>`
	d := &flow.PageData{
		UserCode: x, ClientID: x + "id", ClientName: x, Scopes: []string{x, "openid"},
		CSRF: x, FormAction: "javascript:alert(1)", Error: x, ErrorDetail: x,
		RetryAfter: 60, VerificationURIComplete: "javascript:alert(1)", QRPath: "javascript:alert(2)",
		StartOver: "javascript:alert(3)", AcceptLanguage: x,
	}
	for _, page := range PageNames {
		out := render(t, p, page, d)
		checkSelfContained(t, page, out)
		for _, bad := range []string{"<script>alert", "<img src=x", "\"'>"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: unescaped %q", page, bad)
			}
		}
	}
	out := render(t, p, flow.PageConfirm, d)
	if !strings.Contains(out, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("confirm: payload not shown escaped")
	}
	out = render(t, p, flow.PageError, d)
	if !strings.Contains(out, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("error: ErrorDetail not shown escaped")
	}
}

func TestOverrideReplacesOnePage(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"success.html": `{{template "layout" .}}{{define "title"}}Yay{{end}}{{define "main"}}<h1>Custom success for {{.ClientName}}</h1>{{end}}`,
		"README.txt":   "ignored",
		".enter.html":  "{{ignored hidden file",
	})
	p := mustNew(t, dir)
	out := render(t, p, flow.PageSuccess, &flow.PageData{ClientName: "TV<1>"})
	if !strings.Contains(out, "<h1>Custom success for TV&lt;1&gt;</h1>") || !strings.Contains(out, "<title>Yay · Device sign-in</title>") {
		t.Errorf("override not used:\n%s", out)
	}
	if out := render(t, p, flow.PageEnter, &flow.PageData{}); !strings.Contains(out, "Connect a device") {
		t.Error("other pages changed")
	}

	// A whole-document override that does not use the layout.
	dir = writeFiles(t, map[string]string{
		"denied.html": `<!doctype html><html lang="{{lang}}"><title>{{t "denied.title"}}</title><h1>No</h1></html>`,
	})
	p = mustNew(t, dir)
	if out := render(t, p, flow.PageDenied, &flow.PageData{AcceptLanguage: "de"}); !strings.Contains(out, `<html lang="de"><title>Zugriff abgelehnt</title>`) {
		t.Errorf("standalone override:\n%s", out)
	}

	// The layout applies to every page.
	dir = writeFiles(t, map[string]string{
		"layout.html": `{{define "layout"}}<!doctype html><html lang="{{lang}}"><title>{{block "title" .}}{{end}}</title><main>{{block "main" .}}{{end}}</main>ACME{{end}}`,
	})
	p = mustNew(t, dir)
	for _, page := range PageNames {
		if out := render(t, p, page, samples(page)[0]); !strings.HasSuffix(strings.TrimSpace(out), "</main>ACME") {
			t.Errorf("%s: layout override not used: %s", page, out)
		}
	}
}

func TestOverrideErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  []string // the error must contain these
	}{
		"unknown page": {
			files: map[string]string{"sucess.html": "hi"},
			want:  []string{"sucess.html", "unknown template"},
		},
		"parse error": {
			files: map[string]string{"confirm.html": `{{template "layout" .}}{{define "main"}}{{if .UserCode}}{{end}}`},
			want:  []string{"confirm.html"},
		},
		"unknown function": {
			files: map[string]string{"enter.html": `{{tr "enter.title"}}`},
			want:  []string{"enter.html", "tr"},
		},
		"unknown field": {
			files: map[string]string{"expired.html": `{{template "layout" .}}{{define "main"}}{{.NoSuchField}}{{end}}`},
			want:  []string{"expired.html", "NoSuchField"},
		},
		"unknown field only in some data": {
			files: map[string]string{"confirm.html": `{{template "layout" .}}{{define "main"}}{{index .Scopes 0}}{{end}}`},
			want:  []string{"confirm.html", "index"},
		},
		"unknown message key": {
			files: map[string]string{"toomany.html": `{{template "layout" .}}{{define "main"}}{{t "toomany.titel"}}{{end}}`},
			want:  []string{"toomany.html", "toomany.titel"},
		},
		"layout execution error": {
			files: map[string]string{"layout.html": `{{define "layout"}}{{.Nope}}{{end}}`},
			want:  []string{"layout.html", "Nope"},
		},
		"escaper error": {
			files: map[string]string{"success.html": `<a href="{{.StartOver}}>x</a>`},
			want:  []string{"success.html"},
		},
		"layout escaper error": {
			files: map[string]string{"layout.html": `{{define "layout"}}<a href="{{.StartOver}}>{{end}}`},
			want:  []string{"layout.html"},
		},
		"bad json": {
			files: map[string]string{"messages.de.json": `{"brand": 1}`},
			want:  []string{"messages.de.json"},
		},
		"unknown key": {
			files: map[string]string{"messages.de.json": `{"enter.titel": "x"}`},
			want:  []string{"messages.de.json", "enter.titel"},
		},
		"bad dir": {
			files: map[string]string{"messages.ar.json": `{"meta.dir": "right"}`},
			want:  []string{"messages.ar.json", "meta.dir"},
		},
		"bad language": {
			files: map[string]string{"messages.not a language.json": `{}`},
			want:  []string{"messages.not a language.json"},
		},
		"misnamed messages": {
			files: map[string]string{"message.de.json": `{}`},
			want:  []string{"message.de.json"},
		},
		"trailing json": {
			files: map[string]string{"messages.nl.json": `{"brand": "x"} {}`},
			want:  []string{"messages.nl.json"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			_, err := New(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// Override files are named by their path.
			for f := range tc.files {
				if !strings.Contains(err.Error(), filepath.Join(dir, f)) {
					t.Errorf("error %q does not name %s", err, filepath.Join(dir, f))
				}
			}
		})
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing override directory: no error")
	}
}

func TestOverrideMessages(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"messages.nl.json": `{"enter.heading": "Apparaat koppelen", "brand": "Apparaat aanmelden",
			"duration.minutes.other": "%d minuten"}`,
		"messages.de.json": `{"enter.heading": "Fernseher verbinden", "scope.tv:watch": "Fernsehen"}`,
		"messages.en.json": `{"brand": "ACME TV", "custom.motto": "Watch more"}`,
		"messages.ar.json": `{"meta.dir": "rtl", "enter.heading": "ربط جهاز"}`,
		"enter.html":       `{{template "layout" .}}{{define "main"}}<h1>{{t "enter.heading"}}</h1><p>{{t "custom.motto"}}</p>{{end}}`,
	})
	p := mustNew(t, dir)
	if got := p.Languages(); !slices.Equal(got, []string{"en", "ar", "de", "fr", "nl"}) {
		t.Errorf("Languages() = %v", got)
	}
	cases := []struct{ accept, want string }{
		{"nl-BE, en;q=0.5", `<html lang="nl" dir="ltr">`},
		{"nl", "Apparaat koppelen"},
		{"nl", "Apparaat aanmelden"},
		{"nl", "Watch more"},              // custom key: English fallback
		{"de", "Fernseher verbinden"},     // overridden German key
		{"de", "Geräteanmeldung"},         // other German keys kept
		{"en", "ACME TV"},                 // overridden English
		{"fr", "Connexion d’un appareil"}, // embedded French brand wins over English override
		{"ar", `dir="rtl"`},
	}
	for _, c := range cases {
		out := render(t, p, flow.PageEnter, &flow.PageData{AcceptLanguage: c.accept})
		if !strings.Contains(out, c.want) {
			t.Errorf("Accept-Language %q: no %q", c.accept, c.want)
		}
	}
	// Missing keys in a new language fall back to English; plural forms too.
	out := render(t, p, flow.PageTooMany, &flow.PageData{AcceptLanguage: "nl", RetryAfter: 600})
	if !strings.Contains(out, "Too many attempts") || !strings.Contains(out, "10 minuten") {
		t.Errorf("nl toomany:\n%s", out)
	}
	// An operator's scope description.
	out = render(t, p, flow.PageConfirm, &flow.PageData{AcceptLanguage: "de", Scopes: []string{"tv:watch"}})
	if !strings.Contains(out, "Fernsehen") {
		t.Error("custom scope description not shown")
	}
}

func TestLanguageSelection(t *testing.T) {
	p := mustNew(t, "")
	for _, c := range []struct{ header, want string }{
		{"", "en"},
		{"de", "de"},
		{"DE-de", "de"},
		{"de-AT", "de"},
		{"fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7", "fr"},
		{"en;q=0.5, de;q=0.9", "de"},
		{"en;q=0.5,de;q=0.9,fr;q=0.95", "fr"},
		{"en-US,en;q=0.9,de;q=0.8", "en"},
		{"de-DE;q=0.8,de;q=0.7,en-US;q=0.9", "en"},
		{"de;q=0, fr", "fr"},
		{"de;q=0", "en"},
		{"de;q=0.000, fr;q=0.001", "fr"},
		{"nl, de;q=0.9", "de"},
		{"xx, fr;q=0.1", "fr"},
		{"ja, zh;q=0.9", "en"},
		{"*", "en"},
		{"*, de;q=0.5", "en"},
		{"fr, *;q=0.5", "fr"},
		{"de;q=abc, fr", "fr"},       // malformed entry skipped, not the whole header
		{"de;q=1.5, fr;q=0.2", "fr"}, // q out of range: entry skipped
		{"!!!, de", "de"},
		{"de ; q = 0.8 , fr ; q = 0.9", "fr"},
		{"fr;level=1;q=0.9, de;q=0.8", "fr"},
		{strings.Repeat("xx-yy, ", 3000) + "de", "en"}, // over-long: truncated, no crash
		{"de, " + strings.Repeat("x", 5000), "de"},
	} {
		out := render(t, p, flow.PageEnter, &flow.PageData{AcceptLanguage: c.header})
		want := `<html lang="` + c.want + `"`
		if !strings.Contains(out, want) {
			h := c.header
			if len(h) > 60 {
				h = h[:60] + "..."
			}
			got := regexp.MustCompile(`<html lang="[^"]*"`).FindString(out)
			t.Errorf("Accept-Language %q: %s, want %s", h, got, want)
		}
	}
}

func TestCatalogues(t *testing.T) {
	read := func(lang string) map[string]string {
		b, err := embedded.ReadFile("messages/" + lang + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	en := read("en")
	verbs := regexp.MustCompile(`%(\[\d+\])?[a-z]`)
	for _, lang := range []string{"de", "fr"} {
		m := read(lang)
		for _, k := range slices.Sorted(maps.Keys(en)) {
			v, ok := m[k]
			if !ok {
				t.Errorf("%s: missing %q", lang, k)
				continue
			}
			if a, b := verbs.FindAllString(en[k], -1), verbs.FindAllString(v, -1); !slices.Equal(a, b) {
				t.Errorf("%s %q: verbs %v, English has %v", lang, k, b, a)
			}
		}
		for k := range m {
			if _, ok := en[k]; !ok {
				t.Errorf("%s: extra key %q", lang, k)
			}
		}
	}
	// Every key flow may set has its message in every language.
	for _, lang := range []string{"en", "de", "fr"} {
		m := read(lang)
		for _, e := range flow.ErrorKeys() {
			if m["error."+e] == "" {
				t.Errorf("%s: no message for flow's error key %q", lang, e)
			}
		}
	}
	// Every key is used by some embedded template (or by a function).
	var all strings.Builder
	for _, f := range append([]string{LayoutFile}, pageFiles()...) {
		b, _ := embedded.ReadFile(f)
		all.Write(b)
	}
	for k := range en {
		if strings.HasPrefix(k, "error.") || strings.HasPrefix(k, "scope.") || strings.HasPrefix(k, "duration.") || k == "meta.dir" {
			continue
		}
		if !strings.Contains(all.String(), `"`+k+`"`) {
			t.Errorf("message %q is not used by any template", k)
		}
	}
	// The README documents every key.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for k := range en {
		if !strings.Contains(string(readme), "`"+k+"`") {
			t.Errorf("README.md does not document %q", k)
		}
	}
}

func TestRenderMisc(t *testing.T) {
	p := mustNew(t, "")
	if err := p.Render(&bytes.Buffer{}, "nope", &flow.PageData{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown page: %v", err)
	}
	if out := render(t, p, flow.PageEnter, nil); !strings.Contains(out, "<html") {
		t.Error("nil data")
	}
}

func TestConcurrentRender(t *testing.T) {
	p := mustNew(t, "")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				page := PageNames[(i+j)%len(PageNames)]
				d := samples(page)[0]
				d.AcceptLanguage = []string{"en", "de", "fr"}[(i*j)%3]
				var b bytes.Buffer
				if err := p.Render(&b, page, d); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRenderConfirm(b *testing.B) {
	p, err := New("")
	if err != nil {
		b.Fatal(err)
	}
	d := samples(flow.PageConfirm)[0]
	d.AcceptLanguage = "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5"
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := p.Render(&buf, flow.PageConfirm, d); err != nil {
			b.Fatal(err)
		}
	}
}
