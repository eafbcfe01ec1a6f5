package flow_test

import (
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/geoip"
	"github.com/caddy-device-flow/caddy-device-flow/internal/testgeoip"
)

// events counts the events the service reports.
type events struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *events) Event(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[name]++
}

func (e *events) Upstream(string, string, time.Duration) {}

func (e *events) count(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[name]
}

// The confirmation page says from which network, and how long ago, the
// code was asked for; a person on another network sees a warning.
func TestConfirmPageShowsWhereAndWhen(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	code := h.newCode("198.51.100.7", "tv")["user_code"].(string)
	h.clock.Advance(150 * time.Second)
	near := h.lookup("198.51.100.20", code)
	for _, want := range []string{"198.51.100.x", "2\u00a0minutes ago"} {
		if !strings.Contains(near.body, want) {
			t.Errorf("the confirmation page does not say %q", want)
		}
	}
	if strings.Contains(near.body, "198.51.100.7") {
		t.Error("the page shows the device's whole address")
	}
	if strings.Contains(near.body, `id="far"`) {
		t.Error("a proximity warning on the device's own network")
	}
	far := h.lookup("203.0.113.5", code)
	if far.status != http.StatusOK || !far.isPage("confirm") || !strings.Contains(far.body, `id="far"`) || !strings.Contains(far.body, "203.0.113.x") {
		t.Errorf("from another network: %d, warning shown %v", far.status, strings.Contains(far.body, `id="far"`))
	}
}

func TestProximity(t *testing.T) {
	const tv = "tv"
	tests := []struct {
		name            string
		site, client    flow.ProximityMode
		sitePrefix      flow.ProximityPrefix
		clientPrefix    flow.ProximityPrefix
		device, browser string
		far             bool // the confirmation page warns
		refused         bool // Approve is refused
	}{
		{name: "same /24", device: "198.51.100.7", browser: "198.51.100.200"},
		{name: "another /24, warn (the default)", device: "198.51.100.7", browser: "198.51.101.7", far: true},
		{name: "another /24, require", site: flow.ProximityRequire, device: "198.51.100.7", browser: "198.51.101.7", far: true, refused: true},
		{name: "same /24, require", site: flow.ProximityRequire, device: "198.51.100.7", browser: "198.51.100.8"},
		{name: "off", site: flow.ProximityOff, device: "198.51.100.7", browser: "203.0.113.9"},
		{name: "client require over site warn", client: flow.ProximityRequire, device: "198.51.100.7", browser: "203.0.113.9", far: true, refused: true},
		{name: "client off over site require", site: flow.ProximityRequire, client: flow.ProximityOff, device: "198.51.100.7", browser: "203.0.113.9"},
		{name: "IPv6, same /56", site: flow.ProximityRequire, device: "2001:db8:1:ab00::1", browser: "2001:db8:1:abff:1::2"},
		{name: "IPv6, another /56", site: flow.ProximityRequire, device: "2001:db8:1:ab00::1", browser: "2001:db8:1:ac00::1", far: true, refused: true},
		{name: "IPv4 device, IPv6 browser", site: flow.ProximityRequire, device: "198.51.100.7", browser: "2001:db8::1", far: true, refused: true},
		{name: "IPv4-mapped device address", site: flow.ProximityRequire, device: "::ffff:198.51.100.7", browser: "198.51.100.9"},
		{name: "proximity_prefix 16 48", site: flow.ProximityRequire, sitePrefix: flow.ProximityPrefix{IPv4: 16, IPv6: 48},
			device: "198.51.0.1", browser: "198.51.200.1"},
		{name: "client proximity_prefix 32 128", site: flow.ProximityRequire, clientPrefix: flow.ProximityPrefix{IPv4: 32, IPv6: 128},
			device: "198.51.100.7", browser: "198.51.100.8", far: true, refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
				c.Observer = ev
				c.Proximity, c.ProximityPrefix = tc.site, tc.sitePrefix
				c.Clients = map[string]flow.Client{tv: {Proximity: tc.client, ProximityPrefix: tc.clientPrefix}}
			}})
			auth := h.newCode(tc.device, tv)
			code := auth["user_code"].(string)
			if page := h.lookup(tc.browser, code); strings.Contains(page.body, `id="far"`) != tc.far {
				t.Errorf("confirmation page: warning shown %v, want %v", !tc.far, tc.far)
			}
			a := h.approveOnce(personBrowser(), tc.browser, code)
			switch {
			case tc.refused && (a.status != http.StatusForbidden || !a.isPage("toofar")):
				t.Fatalf("Approve from %s: %d, want 403 and the toofar page", tc.browser, a.status)
			case !tc.refused && a.status != http.StatusSeeOther:
				t.Fatalf("Approve from %s: %d, want 303 to the upstream\n%s", tc.browser, a.status, a.body)
			}
			if got, want := ev.count(flow.EventProximityRefused), b2i(tc.refused); got != want {
				t.Errorf("%d proximity_refused events, want %d", got, want)
			}
			if got, want := ev.count(flow.EventProximityWarned), b2i(tc.far && !tc.refused); got != want {
				t.Errorf("%d proximity_warned events, want %d", got, want)
			}
			if !tc.refused {
				if tc.far {
					h.expectLog(t, logWant{zapcore.InfoLevel, "approved from another network than the device's", tc.browser})
				}
				return
			}
			h.expectLog(t, logWant{zapcore.WarnLevel, "approval refused: the person is not on the device's network", tc.device})
			// Nothing was approved: the device keeps waiting, and the person
			// may approve from the device's network.
			if len(h.pendingVerifiers(t)) != 0 {
				t.Error("a refused Approve started a sign-in")
			}
			if status, out := h.poll(auth["device_code"].(string), tv); status != http.StatusBadRequest || out["error"] != "authorization_pending" {
				t.Errorf("the device after a refused Approve: %d %v", status, out)
			}
			if a := h.approveOnce(personBrowser(), tc.device, code); a.status != http.StatusSeeOther {
				t.Errorf("Approve from the device's own address: %d", a.status)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// With a GeoIP database the page names the place, and the country is a
// second signal: the same /24 split between two countries is not near.
// An address the database does not know shows no place, and no error.
func TestProximityWithGeoIP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "split.mmdb")
	testgeoip.Write(t, path,
		testgeoip.Entry{Network: "198.51.100.0/25", Country: "DE", CountryNames: map[string]string{"en": "Germany"}, CityNames: map[string]string{"en": "Berlin"}},
		testgeoip.Entry{Network: "198.51.100.128/25", Country: "FR", CountryNames: map[string]string{"en": "France"}, CityNames: map[string]string{"en": "Strasbourg"}},
	)
	for _, withDB := range []bool{true, false} {
		db, err := geoip.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		auditCore, audit := observer.New(zapcore.InfoLevel)
		h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
			c.Proximity = flow.ProximityRequire
			c.Audit = zap.New(auditCore)
			if withDB {
				c.Locator = db
			}
		}})
		code := h.newCode("198.51.100.7", "tv")["user_code"].(string)
		page := h.lookup("198.51.100.200", code)
		if got := strings.Contains(page.body, "Berlin, Germany"); got != withDB {
			t.Errorf("geoip %v: place shown %v", withDB, got)
		}
		if a := h.approveOnce(personBrowser(), "198.51.100.200", code); (a.status == http.StatusForbidden) != withDB {
			t.Errorf("geoip %v: Approve from the same /24 in another country: %d", withDB, a.status)
		}
		// The audit event of the mismatch names both places.
		mismatch := audit.FilterMessage(flow.AuditProximityMismatch).All()
		if withDB {
			if len(mismatch) != 1 || mismatch[0].Level != zapcore.WarnLevel {
				t.Fatalf("%d proximity_mismatch audit events, want 1 at warn", len(mismatch))
			}
			f := mismatch[0].ContextMap()
			if f["device_place"] != "Berlin, DE" || f["person_place"] != "Strasbourg, FR" || f["refused"] != true || f["person_ip"] != "198.51.100.200" {
				t.Errorf("proximity_mismatch audit event: %v", f)
			}
		} else if len(mismatch) != 0 {
			t.Errorf("an audit event for a person near the device: %v", mismatch[0].ContextMap())
		}
		if withDB {
			unknown := h.newCode("192.0.2.7", "tv")["user_code"].(string)
			page := h.lookup("192.0.2.8", unknown)
			if page.status != http.StatusOK || !strings.Contains(page.body, "192.0.2.x") || strings.Contains(page.body, `class="place"`) {
				t.Errorf("an address the database does not know: %d, place shown %v", page.status, strings.Contains(page.body, `class="place"`))
			}
		}
	}
}

// countingLocator counts the lookups of a real database.
type countingLocator struct {
	flow.Locator
	n atomic.Int64
}

func (c *countingLocator) Locate(a netip.Addr) flow.Place {
	c.n.Add(1)
	return c.Locator.Locate(a)
}

// Where and proximity are looked at on the person's pages only: issuing
// and polling never consult the database.
func TestPlacesNeverOnThePollPath(t *testing.T) {
	db, err := geoip.Open(testgeoip.Cities(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	loc := &countingLocator{Locator: db}
	h := newHarness(t, harnessOptions{configure: func(c *flow.Config) { c.Locator = loc; c.Proximity = flow.ProximityRequire }})
	auth := h.newCode("198.51.100.7", "tv")
	for range 20 {
		h.clock.Advance(flow.DefaultInterval)
		if status, out := h.poll(auth["device_code"].(string), "tv"); out["error"] != "authorization_pending" {
			t.Fatalf("poll: %d %v", status, out)
		}
	}
	if n := loc.n.Load(); n != 0 {
		t.Fatalf("issuing and 20 polls looked up %d places", n)
	}
	h.lookup("203.0.113.5", auth["user_code"].(string))
	if n := loc.n.Load(); n != 2 {
		t.Errorf("the confirmation page looked up %d places, want 2 (device and person)", n)
	}
}
