package flow

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// Benchmarks of what every issued code and every poll pays for. Run with
// `go test -run '^$' -bench . ./flow`; the HTTP-level numbers, against a
// baseline measured in the same run, come from bench/run.sh.

func BenchmarkUserCodeNew(b *testing.B) {
	for _, f := range []struct {
		name   string
		format UserCodeFormat
	}{{"base20", Base20}, {"digits", Digits}} {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.format.New()
			}
		})
	}
}

func BenchmarkNewDeviceCode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewDeviceCode()
	}
}

func BenchmarkDeviceID(b *testing.B) {
	code := NewDeviceCode()
	b.ReportAllocs()
	for b.Loop() {
		DeviceID(code)
	}
}

// BenchmarkSealPublicKey is the X25519 key derivation every issued code
// pays for.
func BenchmarkSealPublicKey(b *testing.B) {
	code := NewDeviceCode()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealPublicKey(code); err != nil {
			b.Fatal(err)
		}
	}
}

// sampleTokens is the size of a typical token response with an ID token.
var sampleTokens = []byte(`{"access_token":"` + strings.Repeat("a", 800) + `","token_type":"Bearer","expires_in":3600,"refresh_token":"` +
	strings.Repeat("r", 100) + `","id_token":"` + strings.Repeat("i", 900) + `","scope":"openid profile"}`)

// BenchmarkSeal is the callback's work once per approval.
func BenchmarkSeal(b *testing.B) {
	pub, err := SealPublicKey(NewDeviceCode())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := seal(pub, sampleTokens); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen is the delivering poll's work, once per approval.
func BenchmarkOpen(b *testing.B) {
	code := NewDeviceCode()
	pub, err := SealPublicKey(code)
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := seal(pub, sampleTokens)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := open(code, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadForm is the strict form parsing of a poll.
func BenchmarkReadForm(b *testing.B) {
	body := "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=tv&device_code=" + NewDeviceCode()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/device/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, oerr := readForm(httptest.NewRecorder(), r); oerr != nil {
			b.Fatal(oerr)
		}
	}
}

func BenchmarkDeviceCodesNew(b *testing.B) {
	codes := NewDeviceCodes([]byte("secret"))
	b.ReportAllocs()
	for b.Loop() {
		codes.New("BCDFGHJK")
	}
}

func BenchmarkDeviceCodesID(b *testing.B) {
	codes := NewDeviceCodes([]byte("secret"))
	code, _ := codes.New("BCDFGHJK")
	b.ReportAllocs()
	for b.Loop() {
		codes.ID(code)
	}
}
