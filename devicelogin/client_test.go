package devicelogin

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

// reply is one scripted HTTP answer.
type reply struct {
	status int
	ctype  string // default application/json
	body   string
}

func jsonReply(status int, body string) reply { return reply{status: status, body: body} }

func oauthErr(code, desc string) reply {
	return jsonReply(http.StatusBadRequest, `{"error":"`+code+`","error_description":"`+desc+`"}`)
}

var (
	pending  = oauthErr("authorization_pending", "not yet")
	slowDown = oauthErr("slow_down", "easy")
	success  = jsonReply(http.StatusOK, `{"access_token":"AT-123","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-456"}`)
)

// codeReply is a device authorization response with the given expires_in
// and interval members (raw JSON; "" leaves the member out).
func codeReply(expiresIn, interval string) reply {
	var b strings.Builder
	b.WriteString(`{"device_code":"DC-secret","user_code":"BCDF-GHJK","verification_uri":"https://auth.example/device","verification_uri_complete":"https://auth.example/device?user_code=BCDF-GHJK"`)
	if expiresIn != "" {
		b.WriteString(`,"expires_in":` + expiresIn)
	}
	if interval != "" {
		b.WriteString(`,"interval":` + interval)
	}
	b.WriteString("}")
	return jsonReply(http.StatusOK, b.String())
}

// rfc8628Server is an in-test device flow server: /device/code answers
// code; /device/token answers the script in order, repeating the last
// reply once the script is used up. It records the forms it was sent.
type rfc8628Server struct {
	t      *testing.T
	prefix string
	code   reply
	script []reply

	mu         sync.Mutex
	codeForms  []url.Values
	tokenForms []url.Values
	srv        *httptest.Server
}

func newServer(t *testing.T, prefix string, code reply, script ...reply) *rfc8628Server {
	s := &rfc8628Server{t: t, prefix: prefix, code: code, script: script}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *rfc8628Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.t.Errorf("%s %s: want POST", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		s.t.Errorf("%s: Content-Type %q", r.URL.Path, ct)
	}
	if err := r.ParseForm(); err != nil {
		s.t.Errorf("parsing form: %v", err)
	}
	s.mu.Lock()
	var rep reply
	switch r.URL.Path {
	case s.prefix + "/device/code":
		s.codeForms = append(s.codeForms, r.PostForm)
		rep = s.code
	case s.prefix + "/device/token":
		s.tokenForms = append(s.tokenForms, r.PostForm)
		i := min(len(s.tokenForms), len(s.script)) - 1
		if i < 0 {
			rep = reply{status: http.StatusNotFound, ctype: "text/plain", body: "no script"}
		} else {
			rep = s.script[i]
		}
	default:
		rep = reply{status: http.StatusNotFound, ctype: "text/plain", body: "404 page not found"}
	}
	s.mu.Unlock()
	ct := rep.ctype
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(rep.status)
	w.Write([]byte(rep.body))
}

func (s *rfc8628Server) forms() (code, token []url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.codeForms), slices.Clone(s.tokenForms)
}

// fakeClock is a clock whose Sleep advances Now at once and records the
// durations slept.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.t = f.t.Add(d)
	return nil
}

func (f *fakeClock) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sleeps)
}

func secs(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Second
	}
	return out
}

func TestLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prefix  string // server side
		code    reply
		script  []reply
		timeout time.Duration

		wantToken    string // exact token bytes on success
		wantIs       error  // sentinel the error must match
		wantOAuth    string // *OAuthError code expected in the chain
		wantResponse bool   // *ResponseError expected in the chain
		wantMsg      string // substring of err.Error()
		wantExit     int
		wantSleeps   []time.Duration
		wantPolls    int
	}{
		{
			name:       "pending, pending, success",
			code:       codeReply("600", "5"),
			script:     []reply{pending, pending, success},
			wantToken:  success.body,
			wantExit:   ExitCodeSuccess,
			wantSleeps: secs(5, 5, 5),
			wantPolls:  3,
		},
		{
			name:       "no interval means 5 s",
			code:       codeReply("600", ""),
			script:     []reply{pending, success},
			wantToken:  success.body,
			wantSleeps: secs(5, 5),
			wantPolls:  2,
		},
		{
			name:       "interval honoured",
			code:       codeReply("600", "2"),
			script:     []reply{pending, success},
			wantToken:  success.body,
			wantSleeps: secs(2, 2),
			wantPolls:  2,
		},
		{
			name:       "slow_down adds 5 s each time",
			code:       codeReply("600", "2"),
			script:     []reply{pending, slowDown, pending, slowDown, success},
			wantToken:  success.body,
			wantSleeps: secs(2, 2, 7, 7, 12),
			wantPolls:  5,
		},
		{
			name:       "error member with status 200 still counts (GitHub style)",
			code:       codeReply("600", "1"),
			script:     []reply{jsonReply(200, `{"error":"authorization_pending"}`), success},
			wantToken:  success.body,
			wantSleeps: secs(1, 1),
			wantPolls:  2,
		},
		{
			name:       "numeric strings for expires_in and interval",
			code:       codeReply(`"600"`, `"3"`),
			script:     []reply{success},
			wantToken:  success.body,
			wantSleeps: secs(3),
			wantPolls:  1,
		},
		{
			name:       "prefix",
			prefix:     "/oauth",
			code:       codeReply("600", "1"),
			script:     []reply{success},
			wantToken:  success.body,
			wantSleeps: secs(1),
			wantPolls:  1,
		},
		{
			name:       "access_denied",
			code:       codeReply("600", "5"),
			script:     []reply{pending, oauthErr("access_denied", "the user said no")},
			wantIs:     ErrAccessDenied,
			wantOAuth:  "access_denied",
			wantMsg:    "the request was denied: access_denied: the user said no",
			wantExit:   ExitCodeDenied,
			wantSleeps: secs(5, 5),
			wantPolls:  2,
		},
		{
			name:       "expired_token",
			code:       codeReply("600", "5"),
			script:     []reply{pending, oauthErr("expired_token", "too late")},
			wantIs:     ErrExpired,
			wantOAuth:  "expired_token",
			wantMsg:    "the code expired before it was approved: expired_token: too late",
			wantExit:   ExitCodeExpired,
			wantSleeps: secs(5, 5),
			wantPolls:  2,
		},
		{
			name:       "expires_in passes on the client clock",
			code:       codeReply("12", "5"),
			script:     []reply{pending},
			wantIs:     ErrExpired,
			wantMsg:    "the code expired before it was approved",
			wantExit:   ExitCodeExpired,
			wantSleeps: secs(5, 5, 2), // the last wait stops at the expiry, without a poll
			wantPolls:  2,
		},
		{
			name:       "timeout before expiry",
			code:       codeReply("600", "5"),
			script:     []reply{pending},
			timeout:    7 * time.Second,
			wantIs:     ErrTimeout,
			wantMsg:    "timed out waiting for approval after 7s",
			wantExit:   ExitCodeExpired,
			wantSleeps: secs(5, 2),
			wantPolls:  1,
		},
		{
			name:       "expiry before timeout",
			code:       codeReply("6", "5"),
			script:     []reply{pending},
			timeout:    time.Hour,
			wantIs:     ErrExpired,
			wantExit:   ExitCodeExpired,
			wantSleeps: secs(5, 1),
			wantPolls:  1,
		},
		{
			name:      "RFC error from /device/code",
			code:      jsonReply(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"unknown client"}`),
			wantOAuth: "invalid_client",
			wantMsg:   "invalid_client: unknown client",
			wantExit:  ExitCodeFailure,
		},
		{
			name:         "HTML from /device/code",
			code:         reply{status: http.StatusBadGateway, ctype: "text/html; charset=utf-8", body: "<html><body><h1>502 Bad Gateway</h1></body></html>"},
			wantResponse: true,
			wantMsg:      "(HTTP 502, text/html)",
			wantExit:     ExitCodeFailure,
		},
		{
			name:         "HTML with status 200 from /device/code",
			code:         reply{status: http.StatusOK, ctype: "text/html", body: "<!doctype html><title>login</title>"},
			wantResponse: true,
			wantMsg:      "not a JSON object",
			wantExit:     ExitCodeFailure,
		},
		{
			name:         "JSON array from /device/code",
			code:         jsonReply(http.StatusOK, `[1,2,3]`),
			wantResponse: true,
			wantExit:     ExitCodeFailure,
		},
		{
			name:         "missing members in the device authorization response",
			code:         jsonReply(http.StatusOK, `{"user_code":"X","expires_in":600}`),
			wantResponse: true,
			wantMsg:      "lacks device_code, verification_uri",
			wantExit:     ExitCodeFailure,
		},
		{
			name:         "wrong types in the device authorization response",
			code:         jsonReply(http.StatusOK, `{"device_code":1,"user_code":"X","verification_uri":"https://x","expires_in":"soon"}`),
			wantResponse: true,
			wantMsg:      "malformed device authorization response",
			wantExit:     ExitCodeFailure,
		},
		{
			name:         "JSON without error member and an error status",
			code:         jsonReply(http.StatusInternalServerError, `{"message":"boom"}`),
			wantResponse: true,
			wantMsg:      `without an "error" member`,
			wantExit:     ExitCodeFailure,
		},
		{
			name:         "garbage from /device/token",
			code:         codeReply("600", "5"),
			script:       []reply{pending, {status: http.StatusInternalServerError, ctype: "text/plain", body: "\x00\xffgarbage"}},
			wantResponse: true,
			wantMsg:      "HTTP 500",
			wantExit:     ExitCodeFailure,
			wantSleeps:   secs(5, 5),
			wantPolls:    2,
		},
		{
			name:         "token response without access_token",
			code:         codeReply("600", "5"),
			script:       []reply{jsonReply(http.StatusOK, `{"token_type":"Bearer"}`)},
			wantResponse: true,
			wantMsg:      "no access_token",
			wantExit:     ExitCodeFailure,
			wantSleeps:   secs(5),
			wantPolls:    1,
		},
		{
			name:       "other token endpoint error",
			code:       codeReply("600", "5"),
			script:     []reply{oauthErr("invalid_grant", "unknown device_code")},
			wantOAuth:  "invalid_grant",
			wantMsg:    "invalid_grant: unknown device_code",
			wantExit:   ExitCodeFailure,
			wantSleeps: secs(5),
			wantPolls:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.prefix, tt.code, tt.script...)
			clk := newFakeClock()
			var stderr bytes.Buffer
			c := &Client{
				Server:   srv.srv.URL + "/", // a trailing slash must not matter
				Prefix:   strings.TrimPrefix(tt.prefix, "/") + "/",
				ClientID: "tv",
				Scope:    "openid profile",
				Err:      &stderr,
				Timeout:  tt.timeout,
				Now:      clk.Now,
				Sleep:    clk.Sleep,
			}
			token, err := c.Login(context.Background())

			if got := ExitCode(err); got != tt.wantExit {
				t.Errorf("ExitCode(%v) = %d, want %d", err, got, tt.wantExit)
			}
			if tt.wantToken != "" {
				if err != nil {
					t.Fatalf("Login: %v", err)
				}
				if string(token) != tt.wantToken {
					t.Errorf("token = %s, want %s", token, tt.wantToken)
				}
			} else {
				if err == nil {
					t.Fatalf("Login succeeded with %s, want an error", token)
				}
				if token != nil {
					t.Errorf("token = %s alongside error", token)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %q", err, tt.wantIs)
			}
			for _, s := range []error{ErrAccessDenied, ErrExpired, ErrTimeout} {
				if s != tt.wantIs && errors.Is(err, s) {
					t.Errorf("error %q is also %q", err, s)
				}
			}
			var oe *OAuthError
			if got := errors.As(err, &oe); got != (tt.wantOAuth != "") {
				t.Errorf("errors.As(%v, *OAuthError) = %v", err, got)
			} else if got && oe.Code != tt.wantOAuth {
				t.Errorf("OAuthError.Code = %q, want %q", oe.Code, tt.wantOAuth)
			}
			var re *ResponseError
			if got := errors.As(err, &re); got != tt.wantResponse {
				t.Errorf("errors.As(%v, *ResponseError) = %v", err, got)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if got := clk.Sleeps(); !slices.Equal(got, tt.wantSleeps) {
				t.Errorf("slept %v, want %v", got, tt.wantSleeps)
			}

			codeForms, tokenForms := srv.forms()
			if len(codeForms) != 1 {
				t.Fatalf("%d device code requests, want 1", len(codeForms))
			}
			if got := codeForms[0]; got.Get("client_id") != "tv" || got.Get("scope") != "openid profile" {
				t.Errorf("device code form = %v", got)
			}
			if len(tokenForms) != tt.wantPolls {
				t.Errorf("%d token requests, want %d", len(tokenForms), tt.wantPolls)
			}
			for _, f := range tokenForms {
				want := url.Values{
					"grant_type":  {GrantTypeDeviceCode},
					"device_code": {"DC-secret"},
					"client_id":   {"tv"},
				}
				if f.Encode() != want.Encode() {
					t.Errorf("token form = %v, want %v", f, want)
				}
			}
			if strings.Contains(stderr.String(), "DC-secret") {
				t.Errorf("the device code was printed: %q", stderr.String())
			}
		})
	}
}

func TestRequestCodeOmitsEmptyScope(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", codeReply("600", "5"))
	c := &Client{Server: srv.srv.URL, ClientID: "tv"}
	da, err := c.RequestCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if da.UserCode != "BCDF-GHJK" || da.ExpiresIn != 600 || da.Interval != 5 || da.Received.IsZero() {
		t.Errorf("device authorization = %+v", da)
	}
	codeForms, _ := srv.forms()
	if _, ok := codeForms[0]["scope"]; ok {
		t.Errorf("scope sent although empty: %v", codeForms[0])
	}
}

func TestNetworkError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more
	c := &Client{Server: addr, ClientID: "tv", Sleep: newFakeClock().Sleep}
	_, err := c.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "requesting a device code") {
		t.Fatalf("Login = %v, want a connection error", err)
	}
	if got := ExitCode(err); got != ExitCodeFailure {
		t.Errorf("ExitCode = %d, want %d", got, ExitCodeFailure)
	}
}

func TestClientValidation(t *testing.T) {
	t.Parallel()
	for _, c := range []*Client{
		{Server: "https://auth.example", ClientID: ""},
		{Server: "", ClientID: "tv"},
		{Server: "auth.example", ClientID: "tv"},
		{Server: "ftp://auth.example", ClientID: "tv"},
		{Server: "https://", ClientID: "tv"},
	} {
		if _, err := c.Login(context.Background()); err == nil {
			t.Errorf("Login with Server %q, ClientID %q succeeded", c.Server, c.ClientID)
		}
	}
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ server, prefix, want string }{
		{"https://a.example", "", "https://a.example/device/code"},
		{"https://a.example/", "", "https://a.example/device/code"},
		{"https://a.example", "/oauth", "https://a.example/oauth/device/code"},
		{"https://a.example/", "oauth/", "https://a.example/oauth/device/code"},
		{"https://a.example/base", "/x/y/", "https://a.example/base/x/y/device/code"},
	} {
		c := &Client{Server: tt.server, Prefix: tt.prefix}
		if got := c.endpoint("/device/code"); got != tt.want {
			t.Errorf("endpoint(%q, %q) = %q, want %q", tt.server, tt.prefix, got, tt.want)
		}
	}
}

// TestPollSeparately is how an end-to-end test drives the flow: request
// the code, approve it out of band, then poll.
func TestPollSeparately(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", codeReply("600", "5"), pending, success)
	clk := newFakeClock()
	c := &Client{Server: srv.srv.URL, ClientID: "tv", Now: clk.Now, Sleep: clk.Sleep}
	da, err := c.RequestCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	token, err := c.Poll(context.Background(), da)
	if err != nil || string(token) != success.body {
		t.Fatalf("Poll = %s, %v", token, err)
	}
}

func TestPromptPlain(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", codeReply("600", "5"), success)
	clk := newFakeClock()
	var stderr bytes.Buffer
	c := &Client{Server: srv.srv.URL, ClientID: "tv", Err: &stderr, Now: clk.Now, Sleep: clk.Sleep}
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := stderr.String()
	qr, err := qrcode.New("https://auth.example/device?user_code=BCDF-GHJK", qrcode.Low)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"https://auth.example/device\n",
		"│  BCDF-GHJK  │",
		qr.ToSmallString(false),
		"waiting for approval… 10:00 left\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"\x1b", "\r"} {
		if strings.Contains(out, bad) {
			t.Errorf("stderr of a non-terminal contains %q:\n%q", bad, out)
		}
	}
}

func TestPromptNoQR(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", codeReply("600", "5"), success)
	var stderr bytes.Buffer
	c := &Client{Server: srv.srv.URL, ClientID: "tv", Err: &stderr, NoQR: true, Sleep: newFakeClock().Sleep}
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := stderr.String(); strings.Contains(out, "█") || strings.Contains(out, "QR") || !strings.Contains(out, "BCDF-GHJK") {
		t.Errorf("stderr with NoQR:\n%s", out)
	}
}

func TestPromptQRFallsBackToVerificationURI(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", jsonReply(200, `{"device_code":"d","user_code":"U","verification_uri":"https://auth.example/device","expires_in":60}`), success)
	var stderr bytes.Buffer
	c := &Client{Server: srv.srv.URL, ClientID: "tv", Err: &stderr, Sleep: newFakeClock().Sleep}
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	qr, _ := qrcode.New("https://auth.example/device", qrcode.Low)
	if !strings.Contains(stderr.String(), qr.ToSmallString(false)) {
		t.Errorf("no QR code of verification_uri:\n%s", stderr.String())
	}
}

func TestCountdownOnTerminal(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", codeReply("600", "3"), pending, slowDown, success)
	clk := newFakeClock()
	var stderr bytes.Buffer
	c := &Client{Server: srv.srv.URL, ClientID: "tv", Err: &stderr, Terminal: true, Now: clk.Now, Sleep: clk.Sleep}
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := stderr.String()
	for _, want := range []string{
		ansiBold + "BCDF-GHJK" + ansiReset,
		ansiClearLine + "waiting for approval… 10:00 left",
		ansiClearLine + "waiting for approval… 9:59 left",
		ansiClearLine + "waiting for approval… 9:57 left",
		"the server asked to slow down; polling every 8s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, ansiClearLine) {
		t.Errorf("countdown line not cleared at the end: %q", out[max(0, len(out)-60):])
	}
	// The countdown sleeps in steps of at most a second, adding up to the
	// intervals: 3 + 3 + 8.
	var total time.Duration
	for _, d := range clk.Sleeps() {
		if d > time.Second {
			t.Errorf("slept %s in one go on a terminal", d)
		}
		total += d
	}
	if total != 14*time.Second {
		t.Errorf("slept %s in total, want 14s", total)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", codeReply("600", "5"), pending)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := newFakeClock()
	c := &Client{Server: srv.srv.URL, ClientID: "tv", Now: clk.Now, Sleep: func(ctx context.Context, d time.Duration) error {
		if len(clk.Sleeps()) == 2 {
			cancel()
		}
		return clk.Sleep(ctx, d)
	}}
	_, err := c.Login(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Login = %v, want context.Canceled", err)
	}
}

func TestSleepContext(t *testing.T) {
	t.Parallel()
	if err := sleepContext(context.Background(), time.Millisecond); err != nil {
		t.Errorf("sleepContext = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := sleepContext(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepContext after cancel = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("sleepContext ignored the cancellation")
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second:                   "0:00",
		0:                              "0:00",
		time.Millisecond:               "0:01",
		9*time.Minute + 41*time.Second: "9:41",
		10 * time.Minute:               "10:00",
		time.Hour + 2*time.Minute + 3*time.Second: "1:02:03",
	} {
		if got := clock(d); got != want {
			t.Errorf("clock(%s) = %q, want %q", d, got, want)
		}
	}
}
