package templates

import (
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The confirmation page says where and when the code was asked for, in
// each language, and warns prominently when the person is not on the
// device's network.
func TestConfirmPageContext(t *testing.T) {
	p := mustNew(t, "")
	tests := []struct {
		lang, ago, place, far, farMode string
	}{
		{"en", "2 minutes ago", "Berlin, Germany", "This device is not on your network", "choose Deny"},
		{"de", "vor 2 Minuten", "Berlin, Deutschland", "Dieses Gerät ist nicht in Ihrem Netz", "Ablehnen"},
		{"fr", "il y a 2 minutes", "Berlin, Allemagne", "Cet appareil n’est pas sur votre réseau", "Refuser"},
	}
	for _, tc := range tests {
		t.Run(tc.lang, func(t *testing.T) {
			d := samples(flow.PageConfirm)[0]
			d.AcceptLanguage = tc.lang
			doc := parse(t, render(t, p, flow.PageConfirm, d))
			if got := text(find(doc, byTag("dd", "class", "asked"))[0]); got != tc.ago {
				t.Errorf("asked: %q, want %q", got, tc.ago)
			}
			origin := find(doc, byTag("dd", "class", "origin"))
			if len(origin) != 1 || !strings.Contains(text(origin[0]), "198.51.100.x") || !strings.Contains(text(origin[0]), tc.place) {
				t.Fatalf("origin not shown with its network and %q", tc.place)
			}
			if len(find(doc, byTag("div", "id", "far"))) != 0 {
				t.Error("a proximity warning on the device's own network")
			}

			for _, mode := range []string{"warn", "require"} {
				d.Proximity, d.BrowserNetwork, d.BrowserPlace = mode, "203.0.113.x", &paris
				doc := parse(t, render(t, p, flow.PageConfirm, d))
				far := find(doc, byTag("div", "id", "far"))
				if len(far) != 1 {
					t.Fatalf("%s: no proximity warning", mode)
				}
				if role, _ := attr(far[0], "role"); role != "alert" {
					t.Errorf("%s: the warning is not an alert", mode)
				}
				msg := text(far[0])
				for _, want := range []string{tc.far, "198.51.100.x (" + tc.place + ")", "203.0.113.x (FR)"} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: warning %q does not say %q", mode, msg, want)
					}
				}
				if mode == "warn" && !strings.Contains(msg, tc.farMode) {
					t.Errorf("warn: %q does not point to Deny", msg)
				}
			}
		})
	}
}

// Deny is exactly as prominent as Approve: the same element, class and
// place in the same row.
func TestApproveAndDenyLookAlike(t *testing.T) {
	p := mustNew(t, "")
	for _, d := range samples(flow.PageConfirm) {
		doc := parse(t, render(t, p, flow.PageConfirm, d))
		approve := find(doc, byTag("button", "value", "approve"))
		deny := find(doc, byTag("button", "value", "deny"))
		if len(approve) != 1 || len(deny) != 1 {
			t.Fatal("want one Approve and one Deny button")
		}
		ca, _ := attr(approve[0], "class")
		cd, _ := attr(deny[0], "class")
		if ca != cd || approve[0].Parent != deny[0].Parent {
			t.Errorf("Approve (class %q) and Deny (class %q) differ", ca, cd)
		}
	}
}

// The page shown when Approve is refused says why, where each side is,
// and what to do, and leads back to the code's confirmation page.
func TestTooFarPage(t *testing.T) {
	p := mustNew(t, "")
	d := samples(flow.PageTooFar)[0]
	d.Proximity, d.BrowserNetwork, d.BrowserPlace = "require", "203.0.113.x", &paris
	for lang, want := range map[string][]string{
		"en": {"only be approved from the network it is on", "same Wi-Fi", "ask whoever runs this service"},
		"de": {"nur aus dem Netz zugelassen werden", "demselben WLAN", "Betreiber"},
		"fr": {"que depuis le réseau", "même Wi-Fi", "l’exploitant"},
	} {
		d.AcceptLanguage = lang
		doc := parse(t, render(t, p, flow.PageTooFar, d))
		all := text(doc)
		for _, w := range append(want, "198.51.100.x", "203.0.113.x") {
			if !strings.Contains(all, w) {
				t.Errorf("%s: %q not on the page", lang, w)
			}
		}
		if len(find(doc, byTag("a", "href", "/device?code=BCDF-GHJK"))) != 1 {
			t.Errorf("%s: no link back to the code's confirmation page", lang)
		}
		if len(find(doc, byTag("form"))) != 0 {
			t.Errorf("%s: the page has a form (it approves nothing)", lang)
		}
	}
}

// Place names: the page's language, its base language, English, the
// country code; nothing for an unknown place.
func TestPlaceNames(t *testing.T) {
	cats, err := buildCatalogues(map[string][]msgSource{
		"en":    {{data: []byte(`{"meta.dir":"ltr"}`), origin: "en"}},
		"pt-BR": {{data: []byte(`{}`), origin: "pt-BR"}},
		"de":    {{data: []byte(`{}`), origin: "de"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*catalogue{}
	for _, c := range cats {
		byName[c.name] = c
	}
	lisbon := &flow.Place{Country: "PT", CountryNames: map[string]string{"en": "Portugal", "pt": "Portugal"},
		CityNames: map[string]string{"en": "Lisbon", "pt": "Lisboa"}}
	tests := []struct {
		lang string
		p    *flow.Place
		want string
	}{
		{"pt-BR", lisbon, "Lisboa, Portugal"},
		{"de", lisbon, "Lisbon, Portugal"}, // no German name: English
		{"en", &flow.Place{Country: "FR"}, "FR"},
		{"en", &flow.Place{CityNames: map[string]string{"en": "Atlantis"}}, "Atlantis"},
		{"en", &flow.Place{}, ""},
		{"en", nil, ""},
	}
	for _, tc := range tests {
		if got := byName[tc.lang].place(tc.p); got != tc.want {
			t.Errorf("%s: place(%+v) = %q, want %q", tc.lang, tc.p, got, tc.want)
		}
	}
	en := byName["en"]
	if got := en.where("198.51.100.x", nil); got != "198.51.100.x" {
		t.Errorf("where without a place: %q", got)
	}
	if got := en.where("", lisbon); got != "" {
		t.Errorf("where without a network: %q", got)
	}
}

func TestAgo(t *testing.T) {
	en := mustNew(t, "").langs[0].cat
	for seconds, want := range map[int]string{
		0: "1 second", 1: "1 second", 59: "59 seconds", 60: "1 minute", 150: "2 minutes",
		7199: "119 minutes", 7200: "2 hours", 86400: "24 hours",
	} {
		if got := strings.ReplaceAll(en.ago(seconds), "\u00a0", " "); got != want {
			t.Errorf("ago(%d) = %q, want %q", seconds, got, want)
		}
	}
}
