// Package flow is the protocol core of the device flow: the OAuth 2.0
// Device Authorization Grant (RFC 8628) in front of an OAuth 2.0 / OpenID
// Connect server that lacks it. It imports nothing from Caddy; a Service is
// a plain http.Handler over a Config, a Store and a page Renderer.
//
// How a request moves through it:
//
//   - device.go: a device POSTs to /device/code. It gets a user code
//     (codes.UserCodeFormat) and a device code (codes.DeviceCodes: the
//     user code plus a random part, under a MAC of the server secret). The
//     record is stored under the user code with the device code's hash and
//     the X25519 public key its tokens will be sealed to (seal.PublicKey).
//   - token.go: the device polls /device/token. The code's MAC is checked
//     before the store is read; then one atomic UpdateDevice decides
//     authorization_pending, slow_down (§3.5), expired_token,
//     access_denied, or hands out the sealed tokens once.
//   - verify.go: the person opens /device, types or confirms the user code
//     (guesses are limited, limits.go) and presses Approve or Deny.
//     Approve stores the code's one Login (the PKCE verifier, sealed
//     under the state; a new Approve replaces it), starts a new browser
//     session, and sends the browser to the upstream's authorization
//     endpoint (upstream.go).
//   - callback.go: the upstream sends the browser back to /auth/redirect.
//     The state is taken once, the browser checked against the session
//     that started the sign-in (session.go), the code exchanged for
//     tokens, and the tokens sealed to the record's key: only a poll that
//     presents the device code can open them.
//   - refresh.go relays refresh_token grants to the upstream, under
//     refresh_limits.go; qr.go draws verification_uri_complete (with
//     package qr, and keeps what it drew); metadata.go is RFC 8414's
//     document.
//
// secret.go keeps the server secret (from the Store, shared by every
// instance of a handler); every HMAC the service makes (sessions, CSRF
// tokens, browser bindings, login keys, state hashes, device-code MACs) is
// derived from it.
package flow
