package deviceflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI adds the device flow's routes to Caddy's admin API, for
// operators (and `caddy device-flow`, admin_command.go):
//
//	GET  /device-flow/                                the handlers running
//	GET  /device-flow/<handler>/codes[?limit=&after=] its live codes, a page at a time, and guess limits
//	POST /device-flow/<handler>/codes/<user code>/deny
//
// <handler> is a handler's name, or the ID the first route shows for one
// without a name. Answers are JSON; errors are Caddy's API errors. Like
// every admin route, these are behind Caddy's admin access rules (the
// listen address, origins, remote admin's access control): nothing here
// adds or relaxes any. No answer holds a device code, its hash, a token
// or any other secret of a record (see flow.CodeInfo).
type AdminAPI struct{}

// adminPrefix is where the routes are mounted.
const adminPrefix = "/device-flow/"

// CaddyModule returns the Caddy module information. Modules in admin.api
// are loaded with the admin endpoint, without any configuration.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.device_flow",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// AdminHandlerInfo is one running handler, in the answer to GET
// /device-flow/.
type AdminHandlerInfo struct {
	Handler string `json:"handler"`        // the ID in the other routes
	Name    string `json:"name,omitempty"` // its configured name
	Prefix  string `json:"prefix,omitempty"`
	BaseURL string `json:"base_url,omitempty"`
}

// AdminCodes is the answer to GET /device-flow/<handler>/codes: a page
// of at most limit records (default DefaultCodesPage, at most
// MaxCodesPage), the next after the cursor after, the first without one.
// What it takes is bounded by the page, whatever the number of codes.
type AdminCodes struct {
	Handler string `json:"handler"`
	// The first page's answer only: how many codes are live and how many
	// records could not be decoded, over every page; the guess limits'
	// counters in the window running now, and the addresses they refuse.
	Live        *int              `json:"live,omitempty"`
	Unreadable  *int              `json:"unreadable,omitempty"`
	GuessLimits *flow.GuessLimits `json:"guess_limits,omitempty"`
	// This page's live codes, and the user codes of its records that
	// could not be decoded.
	Codes           []flow.CodeInfo `json:"codes"`
	UnreadableCodes []string        `json:"unreadable_codes"`
	// Next is the cursor of the next page (after=); absent after the
	// last.
	Next string `json:"next,omitempty"`
}

// The sizes of a page of codes.
const (
	DefaultCodesPage = 1000
	MaxCodesPage     = 10000
)

// serve routes a request under /device-flow/.
func (AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	parts, err := adminPath(r)
	if err != nil {
		return err
	}
	switch {
	case len(parts) == 0:
		if err := onlyMethod(r, http.MethodGet); err != nil {
			return err
		}
		return listHandlers(w)
	case len(parts) == 2 && parts[1] == "codes":
		if err := onlyMethod(r, http.MethodGet); err != nil {
			return err
		}
		e, err := findHandler(parts[0])
		if err != nil {
			return err
		}
		return listCodes(w, r, e)
	case len(parts) == 4 && parts[1] == "codes" && parts[3] == "deny":
		if err := onlyMethod(r, http.MethodPost); err != nil {
			return err
		}
		e, err := findHandler(parts[0])
		if err != nil {
			return err
		}
		return denyCode(w, r, e, parts[2])
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such device-flow admin route: %s", r.URL.Path)}
}

// adminPath splits the path after /device-flow/ into its unescaped
// segments (a handler name may hold a slash, sent as %2F).
func adminPath(r *http.Request) ([]string, error) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), adminPrefix), "/")
	if rest == "" {
		return nil, nil
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
		parts[i] = u
	}
	return parts, nil
}

func onlyMethod(r *http.Request, method string) error {
	if r.Method != method {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed: use %s", method)}
	}
	return nil
}

func findHandler(id string) (*adminEntry, error) {
	if e := adminHandler(id); e != nil {
		return e, nil
	}
	return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no device_flow handler %q is running", id)}
}

func listHandlers(w http.ResponseWriter) error {
	out := []AdminHandlerInfo{}
	for _, e := range adminHandlers() {
		out = append(out, AdminHandlerInfo{Handler: e.id, Name: e.name, Prefix: e.prefix, BaseURL: e.baseURL})
	}
	return writeJSON(w, out)
}

func listCodes(w http.ResponseWriter, r *http.Request, e *adminEntry) error {
	q := r.URL.Query()
	limit := DefaultCodesPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxCodesPage {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit must be a number from 1 to %d", MaxCodesPage)}
		}
		limit = n
	}
	after := q.Get("after")
	page, err := e.service.Codes(r.Context(), after, limit)
	if errors.Is(err, flow.ErrBadCursor) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	if err != nil {
		return storeError(err)
	}
	out := AdminCodes{Handler: e.id, Codes: page.Codes, UnreadableCodes: page.Unreadable, Next: page.Next}
	if after == "" {
		live, unreadable, err := e.service.CountCodes(r.Context())
		if err != nil {
			return storeError(err)
		}
		guesses, err := e.service.Guesses(r.Context())
		if err != nil {
			return storeError(err)
		}
		out.Live, out.Unreadable, out.GuessLimits = &live, &unreadable, &guesses
	}
	return writeJSON(w, out)
}

func denyCode(w http.ResponseWriter, r *http.Request, e *adminEntry, userCode string) error {
	info, err := e.service.DenyCode(r.Context(), userCode)
	if errors.Is(err, flow.ErrNotFound) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("handler %q has no live code %q", e.id, userCode)}
	}
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, info)
}

// storeError is the API error for a failure of the store.
func storeError(err error) error {
	status := http.StatusInternalServerError
	if errors.Is(err, flow.ErrUnavailable) {
		status = http.StatusServiceUnavailable
	}
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guard.
var _ caddy.AdminRouter = AdminAPI{}
