package codes

import (
	"bytes"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		format UserCodeFormat
		typed  string
		want   string
	}{
		{Base20, "BCDF-GHJK", "BCDFGHJK"},
		{Base20, "bcdfghjk", "BCDFGHJK"},
		{Base20, " bcdf ghjk ", "BCDFGHJK"},
		{Base20, "bc.df–gh_jk", "BCDFGHJK"}, // any separator, even a multi-byte en dash
		{Base20, "BCDF-GHJ", ""},            // too short
		{Base20, "BCDF-GHJKL", ""},          // too long
		{Base20, "BCDA-GHJK", ""},           // A is not in the alphabet
		{Base20, "BCD0-GHJK", ""},           // no digits in base20
		{Base20, "", ""},
		{Base20, strings.Repeat("B", 100), ""},
		{Digits, "123-456-789", "123456789"},
		{Digits, "123 456 789", "123456789"},
		{Digits, "12345678", ""},
		{Digits, "12345678X", ""},
	}
	for _, tc := range tests {
		got := tc.format.Normalize(tc.typed)
		if got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
}

func TestDisplayRoundTrips(t *testing.T) {
	for _, f := range []UserCodeFormat{Base20, Digits} {
		for range 100 {
			code := f.New()
			if len(code) != f.Length || strings.Trim(code, f.Alphabet) != "" {
				t.Fatalf("New() = %q: wrong length or characters", code)
			}
			shown := f.Display(code)
			if f.Normalize(shown) != code || f.Normalize(strings.ToLower(shown)) != code {
				t.Fatalf("Display(%q) = %q does not normalize back", code, shown)
			}
		}
	}
	if got := Base20.Display("BCDFGHJK"); got != "BCDF-GHJK" {
		t.Errorf("Display = %q", got)
	}
	if got := Digits.Display("123456789"); got != "123-456-789" {
		t.Errorf("Display = %q", got)
	}
}

// Every byte value once: with rejection sampling each character comes out
// equally often; with a plain modulo the first 256%20 = 16 characters
// would come out once more than the others.
func TestUserCodesHaveNoModuloBias(t *testing.T) {
	for _, f := range []UserCodeFormat{Base20, Digits} {
		var all []byte
		for b := range 256 {
			all = append(all, byte(b))
		}
		src := bytes.NewReader(all)
		f1 := f
		f1.Length = 256 - 256%len(f.Alphabet) // exactly the accepted bytes
		code := f1.draw(src)
		counts := map[byte]int{}
		for i := 0; i < len(code); i++ {
			counts[code[i]]++
		}
		want := len(code) / len(f.Alphabet)
		for i := 0; i < len(f.Alphabet); i++ {
			if counts[f.Alphabet[i]] != want {
				t.Fatalf("%q drawn %d times, want %d: biased", f.Alphabet[i], counts[f.Alphabet[i]], want)
			}
		}
	}
}

func BenchmarkUserCodeNew(b *testing.B) {
	for name, format := range map[string]UserCodeFormat{"base20": Base20, "digits": Digits} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				format.New()
			}
		})
	}
}

// FuzzNormalize: a normalized user code is "" or exactly Length
// characters of the alphabet; normalizing is idempotent, and the display
// form (also in lower case) normalizes back to the code.
func FuzzNormalize(f *testing.F) {
	for _, seed := range []string{
		"", "BCDF-GHJK", "bcdfghjk", "BCDF GHJK", " b.c.d.f-g h j k ", "BCDF-GHJKL", "BCD", "AEIO-UBCD",
		"123-456-789", "123456789", "1234567890", "١٢٣٤٥٦٧٨٩", "ＢＣＤＦＧＨＪＫ", "BCDF\u00a0GHJK", "bcdf\x00ghjk",
		strings.Repeat("-", 60) + "BCDFGHJK", strings.Repeat("B", 65),
	} {
		f.Add(seed)
	}
	formats := map[string]UserCodeFormat{"base20": Base20, "digits": Digits}
	f.Fuzz(func(t *testing.T, typed string) {
		for name, uf := range formats {
			code := uf.Normalize(typed)
			if code == "" {
				continue
			}
			if len(code) != uf.Length {
				t.Fatalf("%s: %q normalized to %q, length %d", name, typed, code, len(code))
			}
			for i := 0; i < len(code); i++ {
				if !strings.Contains(uf.Alphabet, code[i:i+1]) {
					t.Fatalf("%s: %q normalized to %q, outside the alphabet", name, typed, code)
				}
			}
			if again := uf.Normalize(code); again != code {
				t.Fatalf("%s: not idempotent: %q → %q → %q", name, typed, code, again)
			}
			shown := uf.Display(code)
			for _, back := range []string{shown, strings.ToLower(shown)} {
				if got := uf.Normalize(back); got != code {
					t.Fatalf("%s: %q displays as %q, which normalizes to %q", name, code, back, got)
				}
			}
		}
	})
}
