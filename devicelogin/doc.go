// Package devicelogin is the client side of the OAuth 2.0 Device
// Authorization Grant (RFC 8628): the `caddy device-login` subcommand,
// successor of the Device-Flow-Proxy-Server's client.php.
//
// Importing the package (the module's root package blank-imports it)
// registers the subcommand with Caddy's CLI:
//
//	caddy device-login --server https://auth.example.com --client-id tv
//
// The command is a thin wrapper around [Client], which can also be used on
// its own, e.g. in end-to-end tests:
//
//	c := &devicelogin.Client{Server: srv.URL, ClientID: "tv", Scope: "openid"}
//	da, err := c.RequestCode(ctx)      // POST {server}{prefix}/device/code
//	// ... approve da.UserCode at da.VerificationURI ...
//	token, err := c.Poll(ctx, da)      // POST {server}{prefix}/device/token
//
// or simply token, err := c.Login(ctx), which also prints the prompt
// (verification URI, user code, QR code) and waits with a countdown.
//
// Errors are typed: [*OAuthError] for RFC 6749 §5.2 error responses,
// [*ResponseError] for responses that are not what the protocol promises
// (HTML error pages, garbage), and the sentinels [ErrAccessDenied],
// [ErrExpired] and [ErrTimeout] (test with errors.Is) for the outcomes the
// user must act on. [ExitCode] maps any of them to the command's exit code.
package devicelogin
