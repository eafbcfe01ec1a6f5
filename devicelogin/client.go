package devicelogin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// GrantTypeDeviceCode is the grant_type of RFC 8628 §3.4 token requests.
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

const (
	// DefaultInterval is the polling interval used when the device
	// authorization response has no "interval" (RFC 8628 §3.2).
	DefaultInterval = 5 * time.Second
	// SlowDownStep is added to the interval on every "slow_down"
	// (RFC 8628 §3.5).
	SlowDownStep = 5 * time.Second

	// maxBody caps how much of any response is read.
	maxBody = 1 << 20
	// defaultHTTPTimeout bounds each request when Client.HTTPClient is nil.
	defaultHTTPTimeout = 30 * time.Second
)

// Outcomes the user has to act on. Login and Poll wrap them (together with
// the server's *OAuthError, when there is one), so test with errors.Is.
var (
	// ErrAccessDenied: the user (or the server) refused the request —
	// "access_denied" from the token endpoint.
	ErrAccessDenied = errors.New("the request was denied")
	// ErrExpired: the code expired before it was approved — either the
	// token endpoint said "expired_token" or expires_in elapsed on the
	// client's clock.
	ErrExpired = errors.New("the code expired before it was approved")
	// ErrTimeout: Client.Timeout elapsed before the code was approved
	// (the code itself may still be valid).
	ErrTimeout = errors.New("timed out waiting for approval")
)

// OAuthError is an RFC 6749 §5.2 error response (as reused by RFC 8628
// §3.2 and §3.5).
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	URI         string `json:"error_uri,omitempty"`
	// StatusCode is the HTTP status the error came with.
	StatusCode int `json:"-"`
}

// Error is "<error>: <error_description>", or just "<error>".
func (e *OAuthError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// ResponseError is a response that does not follow the protocol: not JSON
// (an HTML error page from a proxy, say), JSON without the required
// fields, or a success status with neither a result nor an "error".
type ResponseError struct {
	URL         string // the endpoint that was requested
	StatusCode  int
	ContentType string
	Reason      string // what is wrong with it
	Body        []byte // the start of the body, for the message
}

func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unexpected response from %s (HTTP %d", e.URL, e.StatusCode)
	if e.ContentType != "" {
		fmt.Fprintf(&b, ", %s", e.ContentType)
	}
	fmt.Fprintf(&b, "): %s", e.Reason)
	if body := strings.TrimSpace(string(e.Body)); body != "" {
		const max = 120
		if len(body) > max {
			body = body[:max] + "…"
		}
		fmt.Fprintf(&b, "; body: %q", body)
	}
	return b.String()
}

// DeviceAuthorization is the RFC 8628 §3.2 device authorization response.
type DeviceAuthorization struct {
	DeviceCode              string  `json:"device_code"`
	UserCode                string  `json:"user_code"`
	VerificationURI         string  `json:"verification_uri"`
	VerificationURIComplete string  `json:"verification_uri_complete,omitempty"`
	ExpiresIn               Seconds `json:"expires_in"`
	Interval                Seconds `json:"interval,omitempty"`

	// Received is when the response arrived (Client.Now); Poll counts
	// expires_in from it, and sets it to its own start if it is zero.
	Received time.Time `json:"-"`
}

// Expiry is when the code expires by the client's clock, or the zero time
// if the server sent no expires_in.
func (d *DeviceAuthorization) Expiry() time.Time {
	if d.ExpiresIn <= 0 || d.Received.IsZero() {
		return time.Time{}
	}
	return d.Received.Add(d.ExpiresIn.Duration())
}

// Seconds is a JSON number of seconds; numeric strings ("1800") are
// accepted too, as some servers send them.
type Seconds int64

// Duration is s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) * time.Second }

func (s *Seconds) UnmarshalJSON(b []byte) error {
	str := string(bytes.Trim(b, `"`))
	if str == "null" || str == "" {
		*s = 0
		return nil
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil || f < 0 || f > 1e9 {
		return fmt.Errorf("not a number of seconds: %s", b)
	}
	*s = Seconds(f)
	return nil
}

// Client runs the device authorization grant against a server that offers
// {Server}{Prefix}/device/code and {Server}{Prefix}/device/token.
//
// Only Server and ClientID are required; the zero values of the other
// fields are usable defaults. A Client must not be modified while in use.
type Client struct {
	// Server is the base URL, e.g. "https://auth.example.com".
	Server string
	// Prefix is the path the endpoints are mounted under, e.g. "/oauth";
	// "" for the root. Slashes around it do not matter.
	Prefix string
	// ClientID and Scope are sent with the device authorization request;
	// Scope is omitted when empty.
	ClientID string
	Scope    string

	// HTTPClient sends the requests; nil means a client with a 30 s
	// timeout per request.
	HTTPClient *http.Client

	// Err receives the prompt (verification URI, user code, QR code) and
	// progress; nil discards them. The token is never written here.
	Err io.Writer
	// Terminal says Err is an interactive terminal: the user code is shown
	// in bold and a live countdown line is redrawn with \r while waiting.
	// Otherwise one plain "waiting" line is written, and a plain
	// "approved" line when the tokens arrive.
	Terminal bool
	// NoQR leaves the QR code out of the prompt.
	NoQR bool

	// Timeout, if positive, limits how long Poll waits for approval in
	// total (ErrTimeout), in addition to the code's expires_in (ErrExpired).
	Timeout time.Duration

	// Now and Sleep are the clock; nil means time.Now and a
	// context-aware time.Sleep. Tests inject a fake clock so that they do
	// not wait out the interval. Sleep must return ctx.Err() if ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Login requests a device code, prints the prompt to Err and polls until
// the user approves, returning the token response JSON exactly as the
// server sent it.
func (c *Client) Login(ctx context.Context) ([]byte, error) {
	da, err := c.RequestCode(ctx)
	if err != nil {
		return nil, err
	}
	c.printPrompt(da)
	return c.Poll(ctx, da)
}

// RequestCode sends the device authorization request (RFC 8628 §3.1) and
// returns the validated response (§3.2). An error response is returned as
// *OAuthError, anything unparseable as *ResponseError.
func (c *Client) RequestCode(ctx context.Context) (*DeviceAuthorization, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	form := url.Values{"client_id": {c.ClientID}}
	if c.Scope != "" {
		form.Set("scope", c.Scope)
	}
	endpoint := c.endpoint("/device/code")
	resp, err := c.post(ctx, endpoint, form)
	if err != nil {
		return nil, transportError("requesting a device code", err)
	}
	if resp.oauthErr != nil {
		return nil, resp.oauthErr
	}
	var da DeviceAuthorization
	if err := json.Unmarshal(resp.body, &da); err != nil {
		return nil, resp.invalid("malformed device authorization response: " + err.Error())
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"device_code", da.DeviceCode},
		{"user_code", da.UserCode},
		{"verification_uri", da.VerificationURI},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, resp.invalid("device authorization response lacks " + strings.Join(missing, ", "))
	}
	da.Received = c.now()
	return &da, nil
}

// Poll polls the token endpoint (RFC 8628 §3.4) for da until the user
// approves, returning the token response JSON exactly as received. It
// waits da.Interval (DefaultInterval if absent) before each request, adds
// SlowDownStep on every "slow_down", keeps going on
// "authorization_pending", and gives up with ErrExpired once da's
// expires_in has passed (or the server says "expired_token") and with
// ErrTimeout after c.Timeout. "access_denied" gives ErrAccessDenied; any
// other error response is returned as *OAuthError.
func (c *Client) Poll(ctx context.Context, da *DeviceAuthorization) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	start := c.now()
	if da.Received.IsZero() {
		da.Received = start
	}
	interval := da.Interval.Duration()
	if interval <= 0 {
		interval = DefaultInterval
	}

	// The earlier of the code's expiry and our own timeout ends the wait.
	deadline, deadlineErr := da.Expiry(), ErrExpired
	if c.Timeout > 0 {
		if t := start.Add(c.Timeout); deadline.IsZero() || t.Before(deadline) {
			deadline, deadlineErr = t, ErrTimeout
		}
	}
	ended := func() error {
		if deadlineErr == ErrTimeout {
			return fmt.Errorf("%w after %s", ErrTimeout, c.Timeout)
		}
		return fmt.Errorf("%w (it was valid for %s)", ErrExpired, da.ExpiresIn.Duration())
	}

	w := c.waiter(deadline)
	defer w.done()
	form := url.Values{
		"grant_type":  {GrantTypeDeviceCode},
		"device_code": {da.DeviceCode},
		"client_id":   {c.ClientID},
	}
	endpoint := c.endpoint("/device/token")
	for {
		wait := interval
		if !deadline.IsZero() {
			left := deadline.Sub(c.now())
			if left <= 0 {
				return nil, ended()
			}
			wait = min(wait, left)
		}
		if err := w.wait(ctx, wait); err != nil {
			return nil, err
		}
		if !deadline.IsZero() && !c.now().Before(deadline) {
			return nil, ended()
		}

		resp, err := c.post(ctx, endpoint, form)
		if err != nil {
			return nil, transportError("polling for the token", err)
		}
		if oe := resp.oauthErr; oe != nil {
			switch oe.Code {
			case "authorization_pending":
				continue
			case "slow_down":
				interval += SlowDownStep
				w.note(fmt.Sprintf("the server asked to slow down; polling every %s", interval))
				continue
			case "access_denied":
				return nil, fmt.Errorf("%w: %w", ErrAccessDenied, oe)
			case "expired_token":
				return nil, fmt.Errorf("%w: %w", ErrExpired, oe)
			default:
				return nil, oe
			}
		}
		var tok struct {
			AccessToken any `json:"access_token"`
		}
		if err := json.Unmarshal(resp.body, &tok); err != nil {
			return nil, resp.invalid("malformed token response: " + err.Error())
		}
		if s, ok := tok.AccessToken.(string); !ok || s == "" {
			return nil, resp.invalid("token response has no access_token")
		}
		w.approved()
		return resp.body, nil
	}
}

// check reports a Client that cannot work at all.
func (c *Client) check() error {
	if c.ClientID == "" {
		return errors.New("no client ID")
	}
	u, err := url.Parse(c.Server)
	if err != nil {
		return fmt.Errorf("invalid server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid server URL %q: want http(s)://host[:port]", c.Server)
	}
	return nil
}

// endpoint joins Server, Prefix and path with exactly one slash between
// each.
func (c *Client) endpoint(path string) string {
	base := strings.TrimRight(c.Server, "/")
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		base += "/" + p
	}
	return base + path
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	return sleepContext(ctx, d)
}

// sleepContext sleeps for d or until ctx ends, whichever is first.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transportError adds what was being done to a failed request; a
// *ResponseError already names its endpoint and is returned as it is.
func transportError(doing string, err error) error {
	if _, ok := errors.AsType[*ResponseError](err); ok {
		return err
	}
	return fmt.Errorf("%s: %w", doing, err)
}

var defaultHTTPClient = &http.Client{Timeout: defaultHTTPTimeout}

// response is a read response: either an RFC 6749 error or a JSON body to
// decode.
type response struct {
	url         string
	status      int
	contentType string
	body        []byte
	oauthErr    *OAuthError
}

func (r *response) invalid(reason string) *ResponseError {
	body := r.body
	if len(body) > 512 {
		body = body[:512]
	}
	return &ResponseError{URL: r.url, StatusCode: r.status, ContentType: r.contentType, Reason: reason, Body: body}
}

// post sends form and classifies the answer. Transport failures are
// returned as errors; a body carrying an "error" member (whatever the
// status — some servers say 200) becomes r.oauthErr; any other non-2xx
// answer, or a body that is not a JSON object, is a *ResponseError.
func (c *Client) post(ctx context.Context, endpoint string, form url.Values) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "caddy-device-login")
	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the response from %s: %w", endpoint, err)
	}
	r := &response{url: endpoint, status: res.StatusCode, body: body}
	if ct := res.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		r.contentType = mt
		if mt == "" {
			r.contentType = ct
		}
	}

	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		reason := "the body is not a JSON object"
		if res.StatusCode/100 != 2 {
			reason = "error status without an RFC 6749 error object"
		}
		return nil, r.invalid(reason)
	}
	if _, ok := obj["error"]; ok {
		var oe OAuthError
		if err := json.Unmarshal(body, &oe); err != nil || oe.Code == "" {
			return nil, r.invalid(`malformed "error" member`)
		}
		oe.StatusCode = res.StatusCode
		r.oauthErr = &oe
		return r, nil
	}
	if res.StatusCode/100 != 2 {
		return nil, r.invalid(`error status without an "error" member`)
	}
	return r, nil
}
