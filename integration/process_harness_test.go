package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Some tests need Caddy as a separate process: to kill it hard, or to run
// two instances. The binary is built once per test run.
var (
	caddyBinOnce sync.Once
	caddyBin     string
	caddyBinErr  error
)

func buildCaddy(t *testing.T) string {
	t.Helper()
	caddyBinOnce.Do(func() {
		caddyBin = filepath.Join(testData, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBin, "github.com/caddy-device-flow/caddy-device-flow/cmd/caddy").CombinedOutput()
		if err != nil {
			caddyBinErr = fmt.Errorf("go build cmd/caddy: %v\n%s", err, out)
		}
	})
	if caddyBinErr != nil {
		t.Fatal(caddyBinErr)
	}
	return caddyBin
}

// caddyProcess is one running Caddy binary.
type caddyProcess struct {
	cmd    *exec.Cmd
	log    string
	config string // the Caddyfile it runs
	env    []string
}

// startCaddyProcess runs the binary with a Caddyfile and waits until url answers.
func startCaddyProcess(t *testing.T, caddyfile, url string) *caddyProcess {
	t.Helper()
	dir := storeDir(t)
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(buildCaddy(t), "run", "--config", config, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: cmd, log: logPath, config: config, env: cmd.Env}
	t.Cleanup(p.kill)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-ctx.Done():
			out, _ := os.ReadFile(logPath)
			t.Fatalf("caddy did not come up at %s:\n%s", url, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill ends the process with SIGKILL: no shutdown, no flush.
func (p *caddyProcess) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// terminate sends SIGTERM, as a service manager stops Caddy, and reports
// how long the process took to exit; it fails the test if that is more
// than within, and kills it then.
func (p *caddyProcess) terminate(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		p.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
		return time.Since(start)
	case <-time.After(within):
		p.cmd.Process.Kill()
		<-exited
		out, _ := os.ReadFile(p.log)
		t.Fatalf("caddy did not exit within %s of SIGTERM:\n%s", within, out)
		return 0
	}
}

// instanceConfig is one instance's Caddyfile; storage is the rest of the
// storage line.
func instanceConfig(site string, up *upstream, storage string) string {
	cfg := up.Config()
	return fmt.Sprintf(`{
	admin off
	auto_https off
}
%s {
	device_flow {
		authorization_endpoint %s
		token_endpoint %s
		token_auth post
		interval 1s
		guess_limit 2 per 15m
		storage %s
		client %s {
			secret %s
			scopes openid profile email
		}
	}
}
`, site, up.AuthorizationEndpoint(), up.TokenEndpoint(), storage, cfg.ClientID, cfg.ClientSecret)
}
