package flow

import "net/http"

// Another site's page can make its visitors' browsers load any URL as an
// image, script, frame or fetch. Each lookup of a user code that way would
// count against the visitor's guesses, and its answer (an image or not,
// 200 or 404) could tell that page which codes are live. Two defences:
//
//   - Cross-Origin-Resource-Policy: same-origin on every answer of the
//     pages, the callback and the QR images, so the browser hands none to
//     another origin's page (navigations and devices are not affected;
//     /device/code and /device/token take only POST, which no page can
//     embed, and answer polls, which are to get no slower);
//   - requests a browser marks as loaded by another site's page for
//     anything but a navigation are refused before any lookup, so they
//     count against nobody;
//   - navigations another site's page started without a person asking
//     (a popup it keeps sending on, a speculation-rules prefetch: no
//     Sec-Fetch-User) are not looked up either: the code goes on the
//     entry page for the person to confirm, and nothing is counted.

// corp is the Cross-Origin-Resource-Policy of those answers, as a ready
// header value (never appended to).
var corp = []string{"same-origin"}

// embeddedElsewhere reports whether a browser says (Fetch Metadata) that
// another origin's page asked for this as a sub-resource, not a person
// navigating to it: links, redirects, bookmarks and scanned QR codes are
// navigations (Sec-Fetch-Dest: document) and pass; so do clients that
// send no Fetch Metadata.
func embeddedElsewhere(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	dest := r.Header.Get("Sec-Fetch-Dest")
	return dest != "" && dest != "document"
}

// steeredElsewhere reports whether a browser says (Fetch Metadata) that
// another site's page sent it here without a person asking: a navigation
// without Sec-Fetch-User: ?1. One click on such a page opens a popup that
// the page may then send to any number of URLs, and a speculation rule
// prefetches links without any click; counted, each would spend the
// visitor's guesses and could shut them out. A person's click on a link
// (in a web mail, a chat, a redirect chain after it) carries ?1; scanned
// QR codes, typed and bookmarked links are Sec-Fetch-Site: none.
func steeredElsewhere(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return r.Header.Get("Sec-Fetch-User") != "?1"
	}
	return false
}
