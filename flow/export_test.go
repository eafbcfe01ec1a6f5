package flow

import "sync/atomic"

// Test-only exports, for the tests of package flow_test.
var ParseForm = parseForm

// CountQRDraws counts the QR images drawn until the returned stop is
// called.
func CountQRDraws() (count func() int, stop func()) {
	var n atomic.Int64
	orig := drawQR
	drawQR = func(content, format string, size int) ([]byte, string, error) {
		n.Add(1)
		return orig(content, format, size)
	}
	return func() int { return int(n.Load()) }, func() { drawQR = orig }
}

// SubjectOf is subjectOf, for its table and fuzz tests.
var SubjectOf = subjectOf

// NetworkOf is networkOf, for its table test.
var NetworkOf = networkOf
