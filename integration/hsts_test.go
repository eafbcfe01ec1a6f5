package integration

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestHSTSOverHTTPS: a site served over HTTPS (Caddy's internal issuer)
// sends Strict-Transport-Security on the flow's pages by default, without
// includeSubDomains; `hsts off` sends none; the rest of the site is left
// to the site.
func TestHSTSOverHTTPS(t *testing.T) {
	up := startUpstream(t)
	httpsPort := freePort()
	site := fmt.Sprintf("https://localhost:%d", httpsPort)
	config := func(hsts string) string {
		return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	skip_install_trust
	local_certs
	storage file_system %s
}
%s {
	tls internal
	device_flow {
		authorization_endpoint %s
		token_endpoint %s
		storage badger %s
		%s
	}
	respond "next handler" 200
}
`, adminPort, testPort, httpsPort, storeDir(t), site, up.AuthorizationEndpoint(), up.TokenEndpoint(), storeDir(t), hsts)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the internal CA is not installed
		DisableKeepAlives: true,
	}}
	get := func(t *testing.T, path string) string {
		t.Helper()
		// The certificate is issued in the background after the load.
		resp, err := client.Get(site + path)
		for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			resp, err = client.Get(site + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Strict-Transport-Security")
	}
	for _, tc := range []struct {
		hsts, want string
	}{
		{"", "max-age=31536000"},
		{"hsts 730d include_subdomains preload", "max-age=63072000; includeSubDomains; preload"},
		{"hsts off", ""},
	} {
		t.Run(tc.hsts, func(t *testing.T) {
			startCaddy(t, config(tc.hsts))
			for _, path := range []string{"/device", "/auth/redirect?state=x&code=y"} {
				if got := get(t, path); got != tc.want {
					t.Errorf("%s: Strict-Transport-Security %q, want %q", path, got, tc.want)
				}
			}
			if got := get(t, "/elsewhere"); got != "" {
				t.Errorf("the next handler's answer got Strict-Transport-Security %q", got)
			}
		})
	}
}
