package integration

// Runs the openid-client sample of docs/clients.md (Node) against the
// module. scripts/test.sh installs it (and Node when missing); elsewhere
// the test skips unless it is installed, but never in CI:
//
//	(cd integration/testdata/openid-client && npm install --no-save openid-client@6)
//	go test -run TestOpenIDClient ./integration/

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestOpenIDClient(t *testing.T) {
	dir := filepath.Join("testdata", "openid-client")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openid-client is not installed in CI: scripts/test.sh should have installed it")
		}
		t.Skip("openid-client is not installed: (cd integration/testdata/openid-client && npm install --no-save openid-client@6)")
	}
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))

	cmd := exec.Command("node", "device.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "UPSTREAM_ISSUER="+up.Issuer(), "SITE="+testSite, "CLIENT_ID="+up.Config().ClientID)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer done.Stop()
	out := bufio.NewScanner(stdout)

	var started struct {
		UserCode string `json:"user_code"`
	}
	if !out.Scan() || json.Unmarshal(out.Bytes(), &started) != nil {
		t.Fatalf("openid-client did not start the flow: %q", out.Text())
	}
	if page := newBrowser(t).approve(started.UserCode); !page.is("success") {
		t.Fatalf("approve: %d", page.status)
	}
	io.WriteString(stdin, "approved\n")

	var got struct {
		AccessToken          bool   `json:"access_token"`
		Iss                  string `json:"iss"`
		Aud                  any    `json:"aud"`
		RefreshedAccessToken bool   `json:"refreshed_access_token"`
	}
	if !out.Scan() || json.Unmarshal(out.Bytes(), &got) != nil {
		t.Fatalf("openid-client did not finish: %q", out.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !got.AccessToken || !got.RefreshedAccessToken || got.Iss != up.Issuer() {
		t.Fatalf("openid-client got %+v", got)
	}
}
