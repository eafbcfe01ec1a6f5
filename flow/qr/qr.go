// Package qr draws a QR code as a PNG or SVG image, for devices that can
// show an image but cannot make one (the /device/qr endpoint).
package qr

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// QR image sizes, in pixels (PNG) or CSS pixels (the SVG's width and height).
const (
	MinSize     = 64
	MaxSize     = 1024
	DefaultSize = 256

	// maxContent bounds the input before the encoder sees it; the largest
	// QR symbol holds 2331 bytes at medium error correction anyway.
	maxContent = 2331
)

// ErrContent is returned (wrapped) when the content cannot be encoded.
var ErrContent = errors.New("qr: content cannot be encoded")

// Image encodes content as a QR code (medium error correction, with the
// standard four-module quiet zone) and returns it as an image.
//
// format is "png" or "svg". size is the side of the image in pixels; it is
// clamped to [MinSize, MaxSize] and 0 or less means DefaultSize. The
// PNG is drawn with a whole number of pixels per module, centred, so the
// modules stay sharp; it is exactly size×size unless the symbol has more
// modules than size, in which case it is one pixel per module. The SVG is a
// single <path> on a white background with a viewBox in module units, so
// it scales cleanly; size only sets its width and height attributes.
func Image(content string, format string, size int) (body []byte, contentType string, err error) {
	format = strings.ToLower(strings.TrimSpace(format))
	if format != "png" && format != "svg" {
		return nil, "", fmt.Errorf("qr: unknown format %q (want png or svg)", format)
	}
	if content == "" {
		return nil, "", fmt.Errorf("%w: empty", ErrContent)
	}
	if len(content) > maxContent {
		return nil, "", fmt.Errorf("%w: %d bytes is too long (at most %d)", ErrContent, len(content), maxContent)
	}
	switch {
	case size <= 0:
		size = DefaultSize
	case size < MinSize:
		size = MinSize
	case size > MaxSize:
		size = MaxSize
	}

	bitmap, err := qrBitmap(content)
	if err != nil {
		return nil, "", err
	}
	if format == "svg" {
		return qrSVG(bitmap, size), "image/svg+xml", nil
	}
	body, err = qrPNG(bitmap, size)
	if err != nil {
		return nil, "", err
	}
	return body, "image/png", nil
}

// qrBitmap encodes content; the bitmap includes the quiet zone. The
// encoder is third-party code fed with request-derived input, so a panic
// in it becomes an error rather than a crashed request.
func qrBitmap(content string) (bitmap [][]bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			bitmap, err = nil, fmt.Errorf("%w: encoder failed: %v", ErrContent, r)
		}
	}()
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrContent, err)
	}
	bitmap = q.Bitmap()
	if len(bitmap) == 0 || len(bitmap[0]) != len(bitmap) {
		return nil, fmt.Errorf("%w: encoder returned an empty symbol", ErrContent)
	}
	return bitmap, nil
}

var qrPalette = color.Palette{color.White, color.Black}

func qrPNG(bitmap [][]bool, size int) ([]byte, error) {
	n := len(bitmap)
	scale := size / n
	if scale < 1 {
		scale = 1
	}
	side := max(size, n*scale)
	offset := (side - n*scale) / 2 // extra margin, white, around the quiet zone

	img := image.NewPaletted(image.Rect(0, 0, side, side), qrPalette) // all index 0: white
	for y, row := range bitmap {
		for x, dark := range row {
			if !dark {
				continue
			}
			px, py := offset+x*scale, offset+y*scale
			for dy := 0; dy < scale; dy++ {
				line := img.Pix[img.PixOffset(px, py+dy):]
				for dx := 0; dx < scale; dx++ {
					line[dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	// The default level: the best one costs several times the CPU for a
	// few percent of a two-colour image, and images are drawn on request.
	enc := png.Encoder{CompressionLevel: png.DefaultCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("qr: encoding png: %w", err)
	}
	return buf.Bytes(), nil
}

// qrSVG draws each horizontal run of dark modules as one rectangle of a
// single path, in module units.
func qrSVG(bitmap [][]bool, size int) []byte {
	n := len(bitmap)
	ns := strconv.Itoa(n)
	ss := strconv.Itoa(size)
	var b bytes.Buffer
	b.Grow(64 + n*n)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="` + ss + `" height="` + ss +
		`" viewBox="0 0 ` + ns + ` ` + ns + `" shape-rendering="crispEdges" role="img">` + "\n")
	b.WriteString(`<rect width="` + ns + `" height="` + ns + `" fill="#fff"/>` + "\n")
	b.WriteString(`<path fill="#000" d="`)
	for y, row := range bitmap {
		for x := 0; x < n; {
			if !row[x] {
				x++
				continue
			}
			start := x
			for x < n && row[x] {
				x++
			}
			w := strconv.Itoa(x - start)
			b.WriteString("M" + strconv.Itoa(start) + " " + strconv.Itoa(y) + "h" + w + "v1h-" + w + "z")
		}
	}
	b.WriteString(`"/>` + "\n</svg>\n")
	return b.Bytes()
}
