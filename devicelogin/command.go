package devicelogin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// CommandName is the name the subcommand is registered under.
const CommandName = "device-login"

// Exit codes of `caddy device-login`. 0 and 1 follow Caddy's convention
// (caddy.ExitCodeSuccess, caddy.ExitCodeFailedStartup); 2 is left out
// because Caddy's CLI uses it for a forced quit and shells for usage
// errors. Caddy's own 3 (ExitCodeFailedQuit) concerns the server process
// and cannot come from this command.
const (
	ExitCodeSuccess = caddy.ExitCodeSuccess       // 0: the token response is on stdout
	ExitCodeFailure = caddy.ExitCodeFailedStartup // 1: anything not listed below
	ExitCodeDenied  = 3                           // ErrAccessDenied
	ExitCodeExpired = 4                           // ErrExpired or ErrTimeout
)

// ExitCode maps an error from Client to the command's exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitCodeSuccess
	case errors.Is(err, ErrAccessDenied):
		return ExitCodeDenied
	case errors.Is(err, ErrExpired), errors.Is(err, ErrTimeout):
		return ExitCodeExpired
	default:
		return ExitCodeFailure
	}
}

const longHelp = `
Signs in to an OAuth 2.0 server with the Device Authorization Grant
(RFC 8628), the way a TV or a browserless CLI would, and prints the token
response. It is the client side of this module's device flow.

It POSTs client_id and scope to <server><prefix>/device/code and shows, on
stderr, the verification URI, the user code, and a QR code of the complete
verification URI (unless --no-qr). Then it polls <server><prefix>/device/token
every "interval" seconds (5 if the server sends none, 5 more after each
slow_down) until the code is approved, denied or expires. On a terminal a
countdown is shown while waiting; otherwise one "waiting for approval" line,
and an "approved: tokens received" line once the tokens arrive.

On success the token response JSON is written to stdout exactly as received,
so it can be piped:

	caddy device-login --server https://auth.example.com --client-id tv | jq -r .access_token

--prefix is the path the device endpoints are mounted under ("" for the root).
--timeout gives up before the code's own expiry (e.g. 5m, 1h; 0 waits until
the code expires).

Exit codes:
	0  success; the token response is on stdout
	1  any other failure: bad flags, network error, an error response from the
	   server (printed as "error: <error>: <error_description>"), a response
	   that is not valid JSON, or interrupted
	3  the request was denied (access_denied)
	4  the code expired before it was approved (expired_token, expires_in
	   passed, or --timeout reached)
`

func init() {
	caddycmd.RegisterCommand(command(Client{}))
}

// command describes the subcommand. base carries the Client fields no flag
// sets (HTTPClient, Now, Sleep); the CLI registers it with the zero Client:
// the default HTTP client and the real clock.
func command(base Client) caddycmd.Command {
	return caddycmd.Command{
		Name:  CommandName,
		Usage: "--server <url> --client-id <id> [--scope <scopes>] [--prefix <path>] [--no-qr] [--timeout <duration>]",
		Short: "Signs in with the OAuth 2.0 device authorization grant and prints the token",
		Long:  longHelp,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Args = cobra.NoArgs
			fs := cmd.Flags()
			fs.String("server", "", "Base URL of the authorization server, e.g. https://auth.example.com")
			fs.String("client-id", "", "OAuth client ID")
			fs.String("scope", "", "Space-separated scopes to request")
			fs.String("prefix", "", "Path prefix of the /device/code and /device/token endpoints")
			fs.Bool("no-qr", false, "Do not draw a QR code")
			fs.String("timeout", "0", "Give up waiting for approval after this long (0: when the code expires)")
			_ = cmd.MarkFlagRequired("server")
			_ = cmd.MarkFlagRequired("client-id")
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				return runE(cmd, args, base)
			}
		},
	}
}

// runE runs the command and turns its outcome into what caddycmd.Main
// understands. The error message is printed here, once, as a plain
// "error: ..." line; going through caddycmd.WrapCommandFuncForCobra with
// the error would log it a second time through Caddy's logger. That
// wrapper is still what carries an exit status above 1 to caddycmd.Main
// (its error type is unexported), so it is used with a nil error for those.
func runE(cmd *cobra.Command, args []string, base Client) error {
	cmd.SilenceUsage = true // the flags parsed; a failure from here on is not a usage error
	code, err := run(cmd, base)
	if err == nil && code == ExitCodeSuccess {
		return nil
	}
	if err != nil {
		// The message may quote the server (error_description, the
		// content type): no escape sequences reach the terminal.
		fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", printable(err.Error()))
	}
	cmd.SilenceErrors = true // printed above
	if code <= ExitCodeFailure {
		if err == nil {
			err = fmt.Errorf("exit status %d", code)
		}
		return err // caddycmd.Main exits 1 on any error
	}
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) {
		return code, nil
	})(cmd, args)
}

func run(cmd *cobra.Command, base Client) (int, error) {
	fl := caddycmd.Flags{FlagSet: cmd.Flags()}
	timeout, err := caddy.ParseDuration(fl.String("timeout"))
	if err != nil || timeout < 0 {
		return ExitCodeFailure, fmt.Errorf("invalid --timeout %q: want a duration such as 10m", fl.String("timeout"))
	}
	stderr := cmd.ErrOrStderr()
	c := &base
	c.Server = fl.String("server")
	c.Prefix = fl.String("prefix")
	c.ClientID = fl.String("client-id")
	c.Scope = fl.String("scope")
	c.Err = stderr
	c.Terminal = isTerminal(stderr)
	c.NoQR = fl.Bool("no-qr")
	c.Timeout = timeout
	if c.Server == "" || c.ClientID == "" {
		return ExitCodeFailure, errors.New("--server and --client-id are required")
	}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()

	token, err := c.Login(ctx)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		return ExitCode(err), err
	}
	out := cmd.OutOrStdout()
	if _, err := out.Write(token); err != nil {
		return ExitCodeFailure, fmt.Errorf("writing the token: %w", err)
	}
	if len(token) == 0 || token[len(token)-1] != '\n' {
		io.WriteString(out, "\n")
	}
	return ExitCodeSuccess, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
