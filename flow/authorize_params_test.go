package flow_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
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
	base := issuerConfig(t, "")
	base.AuthorizationEndpoint, base.TokenEndpoint = "https://idp.example/authorize", "https://idp.example/token"
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

// TestReservedNamesInEveryForm: a reserved name is refused in every form a
// server may read as it, and only those.
func TestReservedNamesInEveryForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // "" when allowed
	}{
		{"scope", `"scope" is set by the flow: it is what the device asks for`},
		{"SCOPE", `"scope" is set by the flow`},
		{"scope[]", `"scope[]" may be read as "scope"`},
		{"state[]", `"state[]" may be read as "state"`},
		{"state[0]", `"state[0]" may be read as "state"`},
		{"redirect_uri[x][y]", `may be read as "redirect_uri"`},
		{" state", `" state" may be read as "state"`},
		{"state ", `may be read as "state"`},
		{"\tclient_id\n", `may be read as "client_id"`},
		{"state\x00", `may be read as "state"`},
		{"redirect.uri", `"redirect.uri" may be read as "redirect_uri"`},
		{"request uri", `may be read as "request_uri"`},
		{"Request_URI[]", `may be read as "request_uri"`},
		{"ſtate", `"ſtate" is set by the flow`}, // U+017F folds to s
		{"response_type", `"response_type" is set by the flow`},
		{"prompt", ""},
		{"resource[]", ""},
		{"states", ""},
		{"scopes", ""},
		{"x_state", ""},
		{"[state]", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := flow.CheckAuthorizeParam(tc.name)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckAuthorizeParam(%q) = %v, want %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestReservedParamsInTheEndpointQuery: the authorization endpoint's own
// query is carried into every authorization request, so it is held to the
// same rule, whatever form the name takes (percent-encoded too).
func TestReservedParamsInTheEndpointQuery(t *testing.T) {
	for _, tc := range []struct {
		query, want string
	}{
		{"scope=admin", `authorization_endpoint: its query: authorization parameter "scope" is set by the flow`},
		{"tenant=a&request_uri=https://evil.example/r", `its query: authorization parameter "request_uri"`},
		{"scope%5B%5D=admin", `"scope[]" may be read as "scope"`},
		{"%20state=x", `" state" may be read as "state"`},
		{"%73tate=x", `authorization parameter "state"`},
		{"Redirect_Uri=https://evil.example", `"Redirect_Uri" is set by the flow`},
		{"tenant=a&prompt=login", ""},
		{"", ""},
	} {
		t.Run(tc.query, func(t *testing.T) {
			cfg := issuerConfig(t, "")
			cfg.AuthorizationEndpoint, cfg.TokenEndpoint = "https://idp.example/authorize?"+tc.query, "https://idp.example/token"
			svc, err := flow.New(context.Background(), cfg)
			if err == nil {
				svc.Close()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
}
