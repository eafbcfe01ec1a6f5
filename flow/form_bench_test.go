package flow

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkReadForm is the strict form parsing of a poll.
func BenchmarkReadForm(b *testing.B) {
	body := "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=tv&device_code=" + strings.Repeat("A", 54)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/device/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, oerr := readForm(httptest.NewRecorder(), r); oerr != nil {
			b.Fatal(oerr)
		}
	}
}
