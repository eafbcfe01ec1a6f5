package flow

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// MaxBodyBytes bounds request bodies: a device or a browser never needs
// more, and a larger body is refused before it is read whole.
const MaxBodyBytes = 64 << 10

// readForm reads a POST's urlencoded body strictly: no parameters in the
// query string (they would leak into logs, RFC 8628 §3.1 / RFC 6749 §3.1),
// the right content type, no parameter given twice (RFC 6749 §3.1), and a
// bounded size.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.URL.RawQuery != "" {
		return nil, badRequest(ErrInvalidRequest, "parameters must be sent in the request body, not the URL")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest(ErrInvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &oauthError{status: http.StatusRequestEntityTooLarge, Code: ErrInvalidRequest,
				Description: "the request body is too large"}
		}
		return nil, badRequest(ErrInvalidRequest, "the request body could not be read")
	}
	return parseForm(string(body))
}

// parseForm parses an urlencoded body, refusing bad percent-encoding and
// repeated parameters.
func parseForm(body string) (url.Values, *oauthError) {
	form, err := url.ParseQuery(body)
	if err != nil {
		return nil, badRequest(ErrInvalidRequest, "the request body is not valid form encoding")
	}
	for name, values := range form {
		if len(values) > 1 {
			return nil, badRequest(ErrInvalidRequest, "parameter "+quoteParam(name)+" is repeated")
		}
	}
	return form, nil
}

// quoteParam shows a parameter name in an error, cut short and stripped of
// anything unprintable, since it is the client's input.
func quoteParam(name string) string {
	const max = 40
	out := make([]rune, 0, max)
	for _, r := range name {
		if len(out) == max {
			break
		}
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			r = '?'
		}
		out = append(out, r)
	}
	return `"` + string(out) + `"`
}

// methodNotAllowed answers a wrong method on one of our endpoints (rather
// than letting the request fall through to the next handler).
func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeOAuthError(w, &oauthError{status: http.StatusMethodNotAllowed, Code: ErrInvalidRequest,
		Description: "method not allowed; use " + allow})
}
