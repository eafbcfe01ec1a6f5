package flow

// Error keys: what PageData.Error says went wrong. The pages show each
// as the message "error.<key>" in the reader's language.
const (
	// ErrorInvalidCode: the user code is unknown, malformed, expired or
	// used (one answer for all).
	ErrorInvalidCode = "invalid_code"
	// ErrorLocked: the code was opened from too many networks (noteOpened).
	ErrorLocked = "locked"
	// ErrorCSRF: the form was stale or forged.
	ErrorCSRF = "csrf"
	// ErrorPageUsed: the form is from before an Approve in this browser
	// (Back, or another tab).
	ErrorPageUsed = "page_used"
	// ErrorState: the sign-in came back to another browser or was replayed.
	ErrorState = "state"
	// ErrorUpstream: the sign-in service failed or timed out.
	ErrorUpstream = "upstream"
	// ErrorUpstreamError: the sign-in service answered with an error.
	ErrorUpstreamError = "upstream_error"
	// ErrorUnavailable: our storage is down, or the upstream's metadata
	// not read yet.
	ErrorUnavailable = "unavailable"
	// ErrorBadRequest: the request was incomplete or not understood.
	ErrorBadRequest = "bad_request"
	// ErrorUnknown: something failed that the person cannot act on.
	ErrorUnknown = "unknown"
)

// ErrorKeys are every Error* key, for the pages, which must have a
// message for each.
func ErrorKeys() []string {
	return []string{
		ErrorInvalidCode, ErrorLocked, ErrorCSRF, ErrorPageUsed, ErrorState,
		ErrorUpstream, ErrorUpstreamError, ErrorUnavailable, ErrorBadRequest,
		ErrorUnknown,
	}
}
