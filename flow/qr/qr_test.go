package qr

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"strings"
	"testing"
)

const qrTestURI = "https://login.example.com/device?user_code=BCDF-GHJK"

func TestQRPNG(t *testing.T) {
	bitmap, err := qrBitmap(qrTestURI)
	if err != nil {
		t.Fatal(err)
	}
	n := len(bitmap)
	for _, tc := range []struct{ ask, want int }{
		{256, 256}, {300, 300}, {MinSize, MinSize}, {1, MinSize}, {0, DefaultSize},
		{-5, DefaultSize}, {MaxSize, MaxSize}, {100000, MaxSize},
	} {
		t.Run(fmt.Sprint(tc.ask), func(t *testing.T) {
			body, ct, err := Image(qrTestURI, "png", tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			if ct != "image/png" {
				t.Errorf("content type %q", ct)
			}
			img, err := png.Decode(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			b := img.Bounds()
			if b.Dx() != tc.want || b.Dy() != tc.want {
				t.Fatalf("size %dx%d, want %dx%d", b.Dx(), b.Dy(), tc.want, tc.want)
			}
			// Sample the centre of every module: it must match the bitmap.
			scale := tc.want / n
			off := (tc.want - n*scale) / 2
			for y := 0; y < n; y++ {
				for x := 0; x < n; x++ {
					r, _, _, _ := img.At(off+x*scale+scale/2, off+y*scale+scale/2).RGBA()
					if dark := r < 0x8000; dark != bitmap[y][x] {
						t.Fatalf("module (%d,%d): dark=%v, want %v", x, y, dark, bitmap[y][x])
					}
				}
			}
			// The corners are quiet zone: white.
			for _, p := range [][2]int{{0, 0}, {b.Dx() - 1, 0}, {0, b.Dy() - 1}, {b.Dx() - 1, b.Dy() - 1}} {
				if r, _, _, _ := img.At(p[0], p[1]).RGBA(); r < 0x8000 {
					t.Errorf("corner %v is dark", p)
				}
			}
		})
	}
}

type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	ViewBox string   `xml:"viewBox,attr"`
	Width   string   `xml:"width,attr"`
	Height  string   `xml:"height,attr"`
	Shape   string   `xml:"shape-rendering,attr"`
	Rects   []struct {
		Width string `xml:"width,attr"`
		Fill  string `xml:"fill,attr"`
	} `xml:"rect"`
	Paths []struct {
		D    string `xml:"d,attr"`
		Fill string `xml:"fill,attr"`
	} `xml:"path"`
}

func TestQRSVG(t *testing.T) {
	body, ct, err := Image(qrTestURI, "SVG", 320)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "image/svg+xml" {
		t.Errorf("content type %q", ct)
	}
	// Well-formed: a strict decoder reads every token to the end.
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, body)
		}
	}
	var doc svgDoc
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Errorf("namespace %q", doc.XMLName.Space)
	}
	bitmap, _ := qrBitmap(qrTestURI)
	n := len(bitmap)
	if want := fmt.Sprintf("0 0 %d %d", n, n); doc.ViewBox != want {
		t.Errorf("viewBox %q, want %q", doc.ViewBox, want)
	}
	if doc.Width != "320" || doc.Height != "320" {
		t.Errorf("width/height %q/%q", doc.Width, doc.Height)
	}
	if doc.Shape != "crispEdges" {
		t.Errorf("shape-rendering %q", doc.Shape)
	}
	if len(doc.Rects) != 1 || doc.Rects[0].Fill != "#fff" || len(doc.Paths) != 1 {
		t.Fatalf("want one white background rect and one path, got %+v", doc)
	}
	// Redraw the path and compare it with the bitmap, quiet zone included.
	got := make([][]bool, n)
	for i := range got {
		got[i] = make([]bool, n)
	}
	for _, cmd := range strings.Split(strings.TrimSuffix(doc.Paths[0].D, "z"), "z") {
		var x, y, w, w2 int
		if _, err := fmt.Sscanf(cmd, "M%d %dh%dv1h-%d", &x, &y, &w, &w2); err != nil || w != w2 || w < 1 {
			t.Fatalf("path command %q: %v", cmd, err)
		}
		for i := x; i < x+w; i++ {
			got[y][i] = true
		}
	}
	for y := range n {
		for x := range n {
			if got[y][x] != bitmap[y][x] {
				t.Fatalf("module (%d,%d) = %v, want %v", x, y, got[y][x], bitmap[y][x])
			}
		}
	}
	for i := range n { // 4-module quiet zone: first/last rows and columns light
		for _, p := range [][2]int{{i, 0}, {i, 3}, {0, i}, {3, i}, {i, n - 1}, {n - 4, i}} {
			if got[p[1]][p[0]] {
				t.Fatalf("quiet zone module %v is dark", p)
			}
		}
	}
}

func TestQRErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		content, format string
	}{
		"too long":         {strings.Repeat("x", 5000), "png"},
		"too long svg":     {strings.Repeat("x", 2400), "svg"},
		"too long for v40": {strings.Repeat("é", 1200), "png"}, // 2400 bytes
		"empty":            {"", "png"},
		"bad format":       {qrTestURI, "gif"},
	} {
		t.Run(name, func(t *testing.T) {
			body, ct, err := Image(tc.content, tc.format, 256)
			if err == nil {
				t.Fatalf("no error; %d bytes of %s", len(body), ct)
			}
			if body != nil || ct != "" {
				t.Errorf("body/content type set with error: %d bytes, %q", len(body), ct)
			}
			if tc.format != "gif" && !errors.Is(err, ErrContent) {
				t.Errorf("error %v is not ErrContent", err)
			}
		})
	}
	// Just under the limit, the encoder itself decides; a byte-mode string
	// of 2331 bytes fits version 40 at medium correction, 2332 does not.
	if _, _, err := Image(strings.Repeat("x", 2331), "png", 64); err != nil {
		t.Errorf("2331 bytes: %v", err)
	}
}

func TestQRLargeSymbolSmallSize(t *testing.T) {
	// More modules than pixels asked for: one pixel per module, not a
	// smeared image.
	body, _, err := Image(strings.Repeat("x", 2000), "png", 64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	bitmap, _ := qrBitmap(strings.Repeat("x", 2000))
	if got := img.Bounds().Dx(); got != len(bitmap) {
		t.Errorf("width %d, want %d (one pixel per module)", got, len(bitmap))
	}
}

// PNGs are compressed at the default level, not the best: the best costs
// several times the CPU per request for a few bytes. The level is in the
// zlib header that opens the first IDAT chunk (RFC 1950: FLEVEL 2 is the
// default, 3 the best).
func TestQRPNGDefaultCompression(t *testing.T) {
	body, _, err := Image(qrTestURI, "png", 320)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(body, []byte("IDAT"))
	if i < 0 || len(body) < i+6 {
		t.Fatal("no IDAT chunk")
	}
	if level := body[i+5] >> 6; level != 2 {
		t.Fatalf("zlib FLEVEL %d, want 2 (default compression)", level)
	}
}
