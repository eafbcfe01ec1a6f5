package flow_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
	"github.com/caddy-device-flow/caddy-device-flow/templates"
)

// TestAuthorizeParamsReachTheUpstream: the site's parameters and the
// client's (which replace the site's of the same name) are on the
// authorization request mockoidc receives, beside the flow's own, and the
// sign-in still completes.
func TestAuthorizeParamsReachTheUpstream(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) {
		c.AuthorizeParams = url.Values{
			"access_type": {"offline"},
			"prompt":      {"consent"},
			"resource":    {"https://api.example", "https://files.example"},
		}
		for id, client := range c.Clients {
			client.AuthorizeParams = url.Values{"prompt": {"login"}, "audience": {"https://api.example"}}
			c.Clients[id] = client
		}
	}})
	auth := h.newCode("192.0.2.1", h.up.ClientID)
	done := h.approve(personBrowser(), auth["user_code"].(string), nil)
	if !done.isPage("success") {
		t.Fatalf("after the upstream: %d %s", done.status, done.body)
	}

	queries := h.up.AuthorizeQueries()
	if len(queries) != 1 {
		t.Fatalf("%d authorization requests, want 1", len(queries))
	}
	q := queries[0]
	for name, want := range map[string][]string{
		"access_type":           {"offline"},
		"prompt":                {"login"}, // the client's, not the site's
		"audience":              {"https://api.example"},
		"resource":              {"https://api.example", "https://files.example"},
		"scope":                 {"openid"},
		"client_id":             {h.up.ClientID},
		"response_type":         {"code"},
		"code_challenge_method": {"S256"},
	} {
		if !slices.Equal(q[name], want) {
			t.Errorf("%s = %q, want %q", name, q[name], want)
		}
	}
	if q.Get("state") == "" || q.Get("code_challenge") == "" || q.Get("redirect_uri") == "" {
		t.Errorf("the flow's own parameters are missing: %v", q)
	}
	if status, out := h.poll(auth["device_code"].(string), h.up.ClientID); status != http.StatusOK {
		t.Errorf("poll after approval: %d %v", status, out)
	}
}

// TestAuthorizeParamsRefused: New refuses, by name, the parameters the
// flow sets itself, at the site and in a client.
func TestAuthorizeParamsRefused(t *testing.T) {
	pages, err := templates.New("")
	if err != nil {
		t.Fatal(err)
	}
	db, err := badgerstore.Open(badgerstore.Options{InMemory: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	base := flow.Config{
		AuthorizationEndpoint: "https://idp.example/authorize",
		TokenEndpoint:         "https://idp.example/token",
		Store:                 db.Store("params-test"),
		Pages:                 pages,
	}
	for _, tc := range []struct {
		name   string
		site   url.Values
		client url.Values
		want   string
	}{
		{"state at the site", url.Values{"state": {"x"}}, nil, `authorize_params: authorization parameter "state" is set by the flow`},
		{"scope at the site", url.Values{"scope": {"openid"}}, nil, `"scope" is set by the flow`},
		{"redirect_uri in a client", nil, url.Values{"redirect_uri": {"https://evil.example"}}, `client tv: authorize_params: authorization parameter "redirect_uri"`},
		{"another case", url.Values{"Redirect_URI": {"https://evil.example"}}, nil, `authorization parameter "Redirect_URI" is set by the flow`},
		{"a request object", nil, url.Values{"request_uri": {"https://evil.example/r"}}, `authorization parameter "request_uri"`},
		{"empty name", url.Values{"": {"x"}}, nil, "needs a name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.AuthorizeParams = tc.site
			cfg.Clients = map[string]flow.Client{"tv": {AuthorizeParams: tc.client}}
			svc, err := flow.New(context.Background(), cfg)
			if err == nil {
				svc.Close()
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}
