package flow

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
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

// maxUpstreamBody bounds what we read from the upstream.
const maxUpstreamBody = 1 << 20

// pkceChallenge is the S256 code_challenge of a verifier (RFC 7636 §4.2).
func pkceChallenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// authorizeURL is where the person's browser goes to sign in.
func (s *Service) authorizeURL(r *http.Request, d *Device, state, verifier string) string {
	u, _ := url.Parse(s.upstream.Load().authorizationEndpoint) // checked by withDefaults or Discover
	q := u.Query()
	for name, vals := range s.cfg.AuthorizeParams {
		q[name] = vals
	}
	for name, vals := range s.cfg.Clients[d.ClientID].AuthorizeParams {
		q[name] = vals // the client's replace the site's of the same name
	}
	q.Set("response_type", "code")
	q.Set("client_id", d.ClientID)
	q.Set("redirect_uri", s.callbackURL(r))
	if d.Scope != "" {
		q.Set("scope", d.Scope)
	}
	q.Set("state", state)
	q.Set("code_challenge", pkceChallenge(verifier))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Service) callbackURL(r *http.Request) string {
	return s.baseURL(r) + s.paths.Callback
}

// upstreamError is a failure talking to the upstream. It never carries a
// secret: only the status, the OAuth error code and description the
// upstream gave, or what went wrong on the wire.
type upstreamError struct {
	Status      int    // 0 when there was no HTTP answer
	Code        string // the upstream's OAuth error, when it gave one
	Description string
	Err         error // transport failure or unusable answer
}

func (e *upstreamError) Error() string {
	switch {
	case e.Code != "":
		return fmt.Sprintf("upstream answered %d %s: %s", e.Status, e.Code, e.Description)
	case e.Err != nil && e.Status != 0:
		return fmt.Sprintf("upstream answered %d: %v", e.Status, e.Err)
	case e.Err != nil:
		return "upstream unreachable: " + e.Err.Error()
	}
	return fmt.Sprintf("upstream answered %d", e.Status)
}

// exchangeCode trades the authorization code for tokens (RFC 6749 §4.1.3,
// RFC 7636 §4.5) and returns the token response as JSON.
func (s *Service) exchangeCode(ctx context.Context, r *http.Request, clientID, code, verifier string) ([]byte, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {s.callbackURL(r)},
		"code_verifier": {verifier},
	}
	return s.tokenRequest(ctx, "token", clientID, form)
}

// tokenRequest posts to the upstream token endpoint with the client's
// credentials and returns a successful token response as JSON.
func (s *Service) tokenRequest(ctx context.Context, op, clientID string, form url.Values) ([]byte, error) {
	start := time.Now()
	body, err := s.postToken(ctx, clientID, form)
	outcome := "ok"
	var ue *upstreamError
	switch {
	case errors.As(err, &ue) && ue.Code != "":
		outcome = "error"
	case err != nil:
		outcome = "failed"
	}
	if outcome == "failed" {
		s.upstreamDown.failed(op, err)
	} else {
		s.upstreamDown.succeeded()
	}
	s.cfg.Observer.Upstream(op, outcome, time.Since(start))
	return body, err
}

func (s *Service) postToken(ctx context.Context, clientID string, form url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamTimeout)
	defer cancel()
	secret := s.cfg.Clients[clientID].Secret
	if secret == "" || s.cfg.TokenAuth == "post" {
		// A public client names itself in the body (RFC 6749 §4.1.3).
		form.Set("client_id", clientID)
	}
	if secret != "" && s.cfg.TokenAuth == "post" {
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.upstream.Load().tokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &upstreamError{Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if secret != "" && s.cfg.TokenAuth == "basic" {
		// RFC 6749 §2.3.1: both parts form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, &upstreamError{Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody))
	if err != nil {
		return nil, &upstreamError{Status: resp.StatusCode, Err: err}
	}
	fields, err := parseTokenResponse(resp.Header.Get("Content-Type"), raw)
	if err != nil {
		return nil, &upstreamError{Status: resp.StatusCode, Err: err}
	}
	code, _ := fields["error"].(string)
	if code = errorCode(code); code != "" {
		// Some servers quote the code or token they refuse: what we sent
		// never goes on into our logs or to the device.
		desc, _ := fields["error_description"].(string)
		desc = redactSent(desc, form.Get("code"), form.Get("code_verifier"), form.Get("refresh_token"), secret)
		return nil, &upstreamError{Status: resp.StatusCode, Code: code, Description: limitText(desc, 200)}
	}
	if resp.StatusCode != http.StatusOK {
		// No OAuth error: a proxy's or load balancer's failure page, not a
		// refusal by the authorization server.
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return nil, &upstreamError{Status: resp.StatusCode,
			Err: fmt.Errorf("the answer has no OAuth error (content type %q)", limitText(mt, 60))}
	}
	if tok, _ := fields["access_token"].(string); tok == "" {
		return nil, &upstreamError{Status: resp.StatusCode, Err: errors.New("the token response has no access_token")}
	}
	return json.Marshal(fields)
}

// parseTokenResponse reads a JSON token response, or a form-encoded one
// (GitHub answers so unless asked for JSON), into JSON-ready fields.
func parseTokenResponse(contentType string, raw []byte) (map[string]any, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" && !looksLikeJSON(raw) {
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, errors.New("the token response is neither JSON nor form encoding")
		}
		fields := make(map[string]any, len(vals))
		for k := range vals {
			v := vals.Get(k)
			if k == "expires_in" || k == "refresh_token_expires_in" {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					fields[k] = n
					continue
				}
			}
			fields[k] = v
		}
		return fields, nil
	}
	var fields map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, fmt.Errorf("the token response is not a JSON object (content type %q)", limitText(mt, 60))
	}
	return fields, nil
}

func looksLikeJSON(b []byte) bool {
	s := strings.TrimSpace(string(b))
	return strings.HasPrefix(s, "{")
}

// redactSent blanks the secrets we sent out of an upstream's text.
func redactSent(text string, sent ...string) string {
	for _, v := range sent {
		if len(v) >= 4 {
			text = strings.ReplaceAll(text, v, "[redacted]")
		}
	}
	return text
}

// scrubURLError drops the URL from a transport error: an upstream URL may
// carry credentials in its query.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(err, context.DeadlineExceeded) || ue.Timeout() {
			return errors.New("timed out")
		}
		return ue.Err
	}
	return err
}

// maxErrorCode bounds an upstream's error code; RFC 6749's are at most
// 25 bytes (unsupported_response_type), extensions' a little more.
const maxErrorCode = 64

// errorCode is an upstream's OAuth error code made fit for logs, pages and
// a device's answer: RFC 6749's error characters only (%x20-21 /
// %x23-5B / %x5D-7E; any other byte becomes '?'), at most maxErrorCode
// bytes. It goes on verbatim, so unlike a description it is not only cut.
func errorCode(s string) string {
	b := []byte(s[:min(len(s), maxErrorCode)])
	for i, c := range b {
		if c < 0x20 || c == 0x22 || c == 0x5c || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// limitText cuts outside text for logs and pages.
func limitText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
