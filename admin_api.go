package deviceflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
//	GET  /device-flow/<handler>/codes                 its live codes and guess limits
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

// AdminCodes is the answer to GET /device-flow/<handler>/codes.
type AdminCodes struct {
	Handler string          `json:"handler"`
	Live    int             `json:"live"` // how many codes are live
	Codes   []flow.CodeInfo `json:"codes"`
	// The guess limits' counters in the window running now, and the
	// addresses they refuse.
	GuessLimits flow.GuessLimits `json:"guess_limits"`
}

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
	list, err := e.service.Codes(r.Context())
	if err != nil {
		return storeError(err)
	}
	if list == nil {
		list = []flow.CodeInfo{}
	}
	guesses, err := e.service.Guesses(r.Context())
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, AdminCodes{Handler: e.id, Live: len(list), Codes: list, GuessLimits: guesses})
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
