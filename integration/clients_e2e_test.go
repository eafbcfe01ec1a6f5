package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/oauth2"

	"github.com/caddy-device-flow/caddy-device-flow/devicelogin"
	"github.com/caddy-device-flow/caddy-device-flow/internal/testclock"
)

// Real clients against the real module: golang.org/x/oauth2 as it comes,
// and this module's own `caddy device-login` client library.

func TestGolangOAuth2Client(t *testing.T) {
	up := startUpstream(t)
	// x/oauth2 waits the interval for real before each poll; 1s keeps it
	// quick. It reads the configured interval and lifetime.
	startCaddy(t, siteConfig(t, up, "interval 1s\n\t\texpires_in 2m"))
	cfg := oauth2.Config{
		ClientID: up.Config().ClientID,
		Scopes:   []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: testSite + "/device/code",
			TokenURL:      testSite + "/device/token",
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if da.UserCode == "" || da.VerificationURI != testSite+"/device" || !strings.HasPrefix(da.VerificationURIComplete, da.VerificationURI+"?code=") {
		t.Fatalf("device authorization as x/oauth2 read it: %+v", da)
	}
	if left := time.Until(da.Expiry); da.Interval != 1 || left > 2*time.Minute || left < 110*time.Second {
		t.Fatalf("interval %d, expiry in %s; want 1 and 2m", da.Interval, left)
	}
	// The person may sign in before the device first polls.
	if done := newBrowser(t).approve(da.UserCode); !done.is("success") {
		t.Fatalf("approve: %d\n%s", done.status, done.body)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if tok.AccessToken == "" || tok.RefreshToken == "" || idToken == "" || !strings.EqualFold(tok.Type(), "Bearer") {
		t.Fatalf("token: access %t, refresh %t, id_token %t, type %q", tok.AccessToken != "", tok.RefreshToken != "", idToken != "", tok.Type())
	}

	// x/oauth2 refreshes through our token endpoint when the token has
	// expired; the module relays it with the client secret.
	expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	fresh, err := cfg.TokenSource(ctx, expired).Token()
	if err != nil {
		t.Fatalf("refresh through x/oauth2: %v", err)
	}
	if fresh.AccessToken == "" || !fresh.Valid() {
		t.Fatalf("refreshed token: %+v", fresh)
	}
}

// roundTripFunc is an http.RoundTripper made of a func.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The usual use: x/oauth2 polls while the person approves. It waits the
// interval (1 s) for real before each poll, 3 s per style in all; the
// person approves after the second authorization_pending. With its default
// AuthStyleAutoDetect, x/oauth2 sends every unsuccessful request twice in
// a row (HTTP Basic, then the client ID in the form): the module forgives
// that immediate repeat, so neither style ever sees slow_down.
func TestGolangOAuth2PollsWhileThePersonApproves(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, "interval 1s"))
	for _, tc := range []struct {
		name  string
		style oauth2.AuthStyle
		want  []string
	}{
		{"client_id in the form", oauth2.AuthStyleInParams,
			[]string{"authorization_pending", "authorization_pending", ""}},
		{"auto-detect (each failed poll sent twice)", oauth2.AuthStyleAutoDetect,
			[]string{"authorization_pending", "authorization_pending", "authorization_pending", "authorization_pending", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := oauth2.Config{
				ClientID: up.Config().ClientID,
				Scopes:   []string{"openid"},
				Endpoint: oauth2.Endpoint{
					DeviceAuthURL: testSite + "/device/code",
					TokenURL:      testSite + "/device/token",
					AuthStyle:     tc.style,
				},
			}
			var userCode string
			var answers []string
			pending := 0
			transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path != "/device/token" {
					return http.DefaultTransport.RoundTrip(r)
				}
				resp, err := http.DefaultTransport.RoundTrip(r)
				if err != nil {
					return nil, err
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				resp.Body = io.NopCloser(strings.NewReader(string(body)))
				var answer struct{ Error string }
				json.Unmarshal(body, &answer)
				answers = append(answers, answer.Error)
				if answer.Error == "authorization_pending" {
					pending++
					if pending == len(tc.want)-1 {
						if done := newBrowser(t).approve(userCode); !done.is("success") {
							t.Errorf("approve: %d", done.status)
						}
					}
				}
				return resp, nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: transport})

			da, err := cfg.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			userCode = da.UserCode
			tok, err := cfg.DeviceAccessToken(ctx, da)
			if err != nil {
				t.Fatalf("%v (answers: %q)", err, answers)
			}
			if tok.AccessToken == "" || !slices.Equal(answers, tc.want) {
				t.Fatalf("polls answered %q, want %q", answers, tc.want)
			}
		})
	}
}

// clientClock is a devicelogin.Client's own clock, moved by its Sleep
// instead of waiting: the person approves or denies before the device's
// poll, and such a poll is answered at once, however soon it comes.
type clientClock struct{ *testclock.Clock }

func newClientClock() clientClock { return clientClock{testclock.New()} }

func (c clientClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

func TestDeviceLoginClient(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	clientID := up.Config().ClientID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("RequestCode, approve, Poll", func(t *testing.T) {
		clock := newClientClock()
		c := &devicelogin.Client{Server: testSite, ClientID: clientID, Scope: "openid profile", Now: clock.Now, Sleep: clock.Sleep}
		da, err := c.RequestCode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if da.Interval.Duration() != 5*time.Second || da.ExpiresIn.Duration() != 10*time.Minute || da.VerificationURIComplete == "" {
			t.Fatalf("device authorization: %+v", da)
		}
		if done := newBrowser(t).approve(da.UserCode); !done.is("success") {
			t.Fatalf("approve: %d", done.status)
		}
		raw, err := c.Poll(ctx, da)
		if err != nil {
			t.Fatal(err)
		}
		var tokens map[string]any
		if err := json.Unmarshal(raw, &tokens); err != nil || tokens["access_token"] == nil || tokens["id_token"] == nil {
			t.Fatalf("token response %s (%v)", raw, err)
		}
	})

	// Login prints the prompt and polls; the person acts while it waits
	// between two polls (in its second sleep), as they would in real life.
	// A code never approved is the client's own deadline (devicelogin's
	// tests) or the server's expired_token (flow's TestExpiry).
	tests := []struct {
		name     string
		person   func(t *testing.T, userCode string)
		wantErr  error
		wantExit int
	}{
		{"approved", func(t *testing.T, code string) {
			if done := newBrowser(t).approve(code); !done.is("success") {
				t.Errorf("approve: %d", done.status)
			}
		}, nil, devicelogin.ExitCodeSuccess},
		{"denied", func(t *testing.T, code string) {
			b := newBrowser(t)
			confirm := b.get(testSite + "/device?code=" + url.QueryEscape(code))
			b.post("/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {code}, "action": {"deny"}})
		}, devicelogin.ErrAccessDenied, devicelogin.ExitCodeDenied},
	}
	for _, tc := range tests {
		t.Run("Login "+tc.name, func(t *testing.T) {
			var prompt strings.Builder
			var userCode string
			sleeps := 0
			clock := newClientClock()
			c := &devicelogin.Client{Server: testSite, ClientID: clientID, Scope: "openid", Err: &prompt, Now: clock.Now,
				Sleep: func(ctx context.Context, d time.Duration) error {
					if sleeps++; sleeps == 2 {
						userCode = regexp.MustCompile(`│  (\S+)  │`).FindStringSubmatch(prompt.String())[1]
						tc.person(t, userCode)
					}
					return clock.Sleep(ctx, d)
				}}
			raw, err := c.Login(ctx)
			if tc.wantErr == nil && (err != nil || !json.Valid(raw)) {
				t.Fatalf("Login: %v %s", err, raw)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Login: %v, want %v", err, tc.wantErr)
			}
			if got := devicelogin.ExitCode(err); got != tc.wantExit {
				t.Fatalf("exit code %d, want %d", got, tc.wantExit)
			}
			if !strings.Contains(prompt.String(), testSite+"/device") {
				t.Fatalf("the prompt does not name the verification URI:\n%s", prompt.String())
			}
		})
	}
}

// issuerSiteConfig is siteConfig with the upstream found by discovery.
func issuerSiteConfig(t *testing.T, issuer, clientID, secret string) string {
	return siteCaddyfile("issuer "+issuer, "badger "+storeDir(t), clientID, secret, "", "")
}

// An issuer whose metadata is wrong (here: none there) is a configuration
// error: Caddy's load fails with flow's message. Which answers are errors
// and which outages is flow's TestIssuerOutageOrWrongMetadata; an issuer
// that does not answer loads (issuer_down_test.go).
func TestBadIssuerFailsToLoad(t *testing.T) {
	up := startUpstream(t)
	config := issuerSiteConfig(t, up.Addr()+"/nothing", up.Config().ClientID, up.Config().ClientSecret)
	caddytest.AssertLoadError(t, config, "caddyfile", "HTTP status 404")
}
