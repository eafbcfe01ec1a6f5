package devicelogin

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// registeredCommand builds the cobra command the way caddycmd does for the
// root command, from what init registered.
func registeredCommand(t *testing.T) *cobra.Command {
	t.Helper()
	def, ok := caddycmd.Commands()[CommandName]
	if !ok {
		t.Fatalf("command %q is not registered", CommandName)
	}
	return cobraCommand(def)
}

func cobraCommand(def caddycmd.Command) *cobra.Command {
	cmd := &cobra.Command{Use: def.Name + " " + def.Usage, Short: def.Short, Long: def.Long}
	def.CobraFunc(cmd)
	return cmd
}

// exitStatus is what caddycmd.Main would exit with after Execute returned
// err: the ExitCode of its (unexported) exitError, 1 for any other error.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if typ := v.Elem().Type(); typ.PkgPath() == "github.com/caddyserver/caddy/v2/cmd" && typ.Name() == "exitError" {
			return int(v.Elem().FieldByName("ExitCode").Int())
		}
	}
	return 1
}

type cmdResult struct {
	stdout, stderr string
	code           int
	err            error
}

// execute runs the command, as registered but on a fake clock, with args;
// configure (optional) adjusts the Client after the fake clock is put in.
func execute(t *testing.T, ctx context.Context, configure func(*Client), args ...string) (cmdResult, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	base := Client{Now: clk.Now, Sleep: clk.Sleep}
	if configure != nil {
		configure(&base)
	}
	// Mounted under a root like caddycmd's (whose SilenceUsage is set too).
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	root.AddCommand(cobraCommand(command(base)))
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{CommandName}, args...))
	err := root.ExecuteContext(ctx)
	return cmdResult{stdout: stdout.String(), stderr: stderr.String(), code: exitStatus(t, err), err: err}, clk
}

func TestCommandRegistered(t *testing.T) {
	def, ok := caddycmd.Commands()[CommandName]
	if !ok {
		t.Fatal("not registered")
	}
	for _, want := range []string{"Exit codes:", "0  success", "1  any other failure", "3  the request was denied", "4  the code expired"} {
		if !strings.Contains(def.Long, want) {
			t.Errorf("Long help lacks %q", want)
		}
	}
	cmd := registeredCommand(t)
	for _, f := range []string{"server", "client-id", "scope", "prefix", "no-qr", "timeout"} {
		if cmd.Flags().Lookup(f) == nil {
			t.Errorf("no --%s flag", f)
		}
		if !strings.Contains(def.Usage, "--"+f) {
			t.Errorf("Usage lacks --%s", f)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name       string
		prefix     string
		code       reply
		script     []reply
		args       []string // after --server and --client-id
		wantCode   int
		wantStdout string
		wantStderr []string
		notStderr  []string
		wantSleeps []time.Duration
	}{
		{
			name:       "success",
			code:       codeReply("600", "5"),
			script:     []reply{pending, pending, success},
			args:       []string{"--scope", "openid profile"},
			wantCode:   ExitCodeSuccess,
			wantStdout: success.body + "\n",
			wantStderr: []string{"https://auth.example/device\n", "BCDF-GHJK", "█", "waiting for approval… 10:00 left"},
			notStderr:  []string{"error", "AT-123"},
			wantSleeps: secs(5, 5, 5),
		},
		{
			name:       "prefix and no QR",
			prefix:     "/oauth",
			code:       codeReply("600", "1"),
			script:     []reply{success},
			args:       []string{"--prefix", "/oauth", "--no-qr"},
			wantCode:   ExitCodeSuccess,
			wantStdout: success.body + "\n",
			notStderr:  []string{"█"},
		},
		{
			name:       "slow_down",
			code:       codeReply("600", "5"),
			script:     []reply{slowDown, success},
			wantCode:   ExitCodeSuccess,
			wantStdout: success.body + "\n",
			wantStderr: []string{"polling every 10s"},
			wantSleeps: secs(5, 10),
		},
		{
			name:       "denied",
			code:       codeReply("600", "5"),
			script:     []reply{pending, oauthErr("access_denied", "the user said no")},
			wantCode:   ExitCodeDenied,
			wantStderr: []string{"error: the request was denied: access_denied: the user said no\n"},
		},
		{
			name:       "expired_token",
			code:       codeReply("600", "5"),
			script:     []reply{oauthErr("expired_token", "")},
			wantCode:   ExitCodeExpired,
			wantStderr: []string{"error: the code expired before it was approved: expired_token\n"},
		},
		{
			name:       "expires_in passes",
			code:       codeReply("9", "5"),
			script:     []reply{pending},
			wantCode:   ExitCodeExpired,
			wantStderr: []string{"error: the code expired before it was approved (it was valid for 9s)\n"},
			wantSleeps: secs(5, 4),
		},
		{
			name:       "timeout flag",
			code:       codeReply("600", "5"),
			script:     []reply{pending},
			args:       []string{"--timeout", "12s"},
			wantCode:   ExitCodeExpired,
			wantStderr: []string{"error: timed out waiting for approval after 12s\n"},
			wantSleeps: secs(5, 5, 2),
		},
		{
			name:       "RFC error from /device/code",
			code:       jsonReply(http.StatusBadRequest, `{"error":"invalid_scope","error_description":"scope foo is unknown"}`),
			args:       []string{"--scope", "foo"},
			wantCode:   ExitCodeFailure,
			wantStderr: []string{"error: invalid_scope: scope foo is unknown\n"},
			notStderr:  []string{"BCDF-GHJK", "waiting"},
		},
		{
			name:       "HTML from /device/code",
			code:       reply{status: http.StatusServiceUnavailable, ctype: "text/html", body: "<html>down for maintenance</html>"},
			wantCode:   ExitCodeFailure,
			wantStderr: []string{"error: unexpected response from ", "/device/code (HTTP 503, text/html)", "down for maintenance"},
		},
		{
			name:       "escapes in the prompt",
			code:       jsonReply(http.StatusOK, `{"device_code":"DC","user_code":"BCDF\u001b[2J-GHJK","verification_uri":"https://auth.example/device\u001b]52;c;cm0gLXJmIH4=\u0007","expires_in":600}`),
			script:     []reply{success},
			args:       []string{"--no-qr"},
			wantCode:   ExitCodeSuccess,
			wantStdout: success.body + "\n",
			wantStderr: []string{"BCDF?[2J-GHJK", "https://auth.example/device?]52;c;cm0gLXJmIH4=?"},
			notStderr:  []string{"\x1b", "\a"},
		},
		{
			name:       "escapes in an error",
			code:       codeReply("600", "5"),
			script:     []reply{oauthErr("access_denied", `no\u001b]0;pwned\u0007\u009b2J\u202e`)},
			args:       []string{"--no-qr"},
			wantCode:   ExitCodeDenied,
			wantStderr: []string{"access_denied: no?]0;pwned??2J?\n"},
			notStderr:  []string{"\x1b", "\a", "\u009b", "\u202e"},
		},
		{
			name:       "bad timeout",
			code:       codeReply("600", "5"),
			args:       []string{"--timeout", "soon"},
			wantCode:   ExitCodeFailure,
			wantStderr: []string{`error: invalid --timeout "soon"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.prefix, tt.code, tt.script...)
			args := append([]string{"--server", srv.srv.URL, "--client-id", "tv"}, tt.args...)
			res, clk := execute(t, context.Background(), nil, args...)
			if res.code != tt.wantCode {
				t.Errorf("exit status %d (err %v), want %d; stderr:\n%s", res.code, res.err, tt.wantCode, res.stderr)
			}
			if res.stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", res.stdout, tt.wantStdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
				}
			}
			for _, bad := range tt.notStderr {
				if strings.Contains(res.stderr, bad) {
					t.Errorf("stderr contains %q:\n%s", bad, res.stderr)
				}
			}
			if strings.Count(res.stderr, "error:") > 1 {
				t.Errorf("error printed more than once:\n%s", res.stderr)
			}
			if tt.wantSleeps != nil && !slices.Equal(clk.Sleeps(), tt.wantSleeps) {
				t.Errorf("slept %v, want %v", clk.Sleeps(), tt.wantSleeps)
			}
		})
	}
}

func TestCommandUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--client-id", "tv"},
		{"--server", "http://127.0.0.1:1"},
		{"--server", "http://127.0.0.1:1", "--client-id", "tv", "extra"},
		{"--server", "http://127.0.0.1:1", "--client-id", "tv", "--no-such-flag"},
		{"--server", "not a url", "--client-id", "tv"},
	} {
		res, _ := execute(t, context.Background(), nil, args...)
		if res.code != ExitCodeFailure || res.stdout != "" && !strings.Contains(res.stdout, "Usage") {
			t.Errorf("%q: exit %d, stdout %q", args, res.code, res.stdout)
		}
		if res.stderr == "" {
			t.Errorf("%q: nothing on stderr", args)
		}
	}
}

func TestCommandInterrupted(t *testing.T) {
	srv := newServer(t, "", codeReply("600", "5"), pending)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, clk := execute(t, ctx, func(c *Client) {
		sleep := c.Sleep
		c.Sleep = func(sctx context.Context, d time.Duration) error {
			cancel() // as if Ctrl-C arrived during the first wait
			return sleep(sctx, d)
		}
	}, "--server", srv.srv.URL, "--client-id", "tv")
	if res.code != ExitCodeFailure || !strings.Contains(res.stderr, "error: interrupted\n") {
		t.Errorf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
	if n := len(clk.Sleeps()); n != 0 {
		t.Errorf("%d sleeps completed after the interrupt", n)
	}
	if _, tokenForms := srv.forms(); len(tokenForms) != 0 {
		t.Errorf("polled %d times after the interrupt", len(tokenForms))
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{&OAuthError{Code: "invalid_client"}, 1},
		{&ResponseError{}, 1},
		{ErrAccessDenied, 3},
		{ErrExpired, 4},
		{ErrTimeout, 4},
		{context.Canceled, 1},
	} {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestCommandFinalLine: on a non-terminal (a log, a CI job) the last line
// on stderr says how the wait ended, never "waiting for approval…".
func TestCommandFinalLine(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script []reply
		want   string
	}{
		{"approved", []reply{pending, success}, "approved: tokens received"},
		{"refused", []reply{pending, oauthErr("access_denied", "the user said no")}, "error: the request was denied: access_denied: the user said no"},
		{"expired", []reply{oauthErr("expired_token", "")}, "error: the code expired before it was approved: expired_token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, "", codeReply("600", "5"), tt.script...)
			res, _ := execute(t, context.Background(), nil, "--server", srv.srv.URL, "--client-id", "tv", "--no-qr")
			lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
			if last := lines[len(lines)-1]; last != tt.want {
				t.Errorf("last line of stderr %q, want %q; stderr:\n%s", last, tt.want, res.stderr)
			}
			if tt.name != "approved" && strings.Contains(res.stderr, "tokens received") {
				t.Errorf("stderr says approved:\n%s", res.stderr)
			}
		})
	}
}
