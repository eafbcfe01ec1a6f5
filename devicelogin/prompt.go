package devicelogin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"
)

const (
	ansiBold      = "\x1b[1m"
	ansiReset     = "\x1b[0m"
	ansiClearLine = "\r\x1b[K" // back to column 0, erase to the end of line
)

func (c *Client) errWriter() io.Writer {
	if c.Err == nil {
		return io.Discard
	}
	return c.Err
}

// printPrompt tells the user where to go and what to enter: the
// verification URI, the user code in a box (bold on a terminal) and,
// unless NoQR, a QR code of verification_uri_complete (or of
// verification_uri when the server sent no complete URI).
func (c *Client) printPrompt(da *DeviceAuthorization) {
	w := c.errWriter()
	var b strings.Builder
	fmt.Fprintf(&b, "\nTo sign in, open this page in a browser:\n\n    %s\n\nand enter the code:\n\n", printable(da.VerificationURI))
	code := printable(da.UserCode)
	bar := strings.Repeat("─", utf8.RuneCountInString(code)+4)
	if c.Terminal {
		code = ansiBold + code + ansiReset
	}
	fmt.Fprintf(&b, "    ┌%s┐\n    │  %s  │\n    └%s┘\n\n", bar, code, bar)

	if !c.NoQR {
		target, what := da.VerificationURIComplete, "opens the page with the code filled in"
		if target == "" {
			target, what = da.VerificationURI, "opens the page"
		}
		if qr, err := qrcode.New(target, qrcode.Low); err == nil {
			fmt.Fprintf(&b, "Or scan this QR code with a phone (it %s):\n\n", what)
			b.WriteString(qr.ToSmallString(false))
			b.WriteString("\n")
		}
	}
	io.WriteString(w, b.String())
}

// waiter shows progress while Poll waits: on a terminal a countdown line
// redrawn every second, otherwise a single line.
type waiter struct {
	c        *Client
	w        io.Writer
	deadline time.Time // zero: unknown
	live     bool
	drawn    bool // the live line is on screen
}

func (c *Client) waiter(deadline time.Time) *waiter {
	w := &waiter{c: c, w: c.errWriter(), deadline: deadline, live: c.Terminal}
	if !w.live {
		fmt.Fprintln(w.w, w.status())
	}
	return w
}

// status is "waiting for approval… 9:41 left".
func (w *waiter) status() string {
	if w.deadline.IsZero() {
		return "waiting for approval…"
	}
	return "waiting for approval… " + clock(w.deadline.Sub(w.c.now())) + " left"
}

// wait sleeps d, redrawing the countdown at least every second when live.
func (w *waiter) wait(ctx context.Context, d time.Duration) error {
	if !w.live {
		return w.c.sleep(ctx, d)
	}
	for d > 0 {
		io.WriteString(w.w, ansiClearLine+w.status())
		w.drawn = true
		step := min(d, time.Second)
		if err := w.c.sleep(ctx, step); err != nil {
			return err
		}
		d -= step
	}
	return nil
}

// note prints a line of news without garbling the countdown.
func (w *waiter) note(msg string) {
	if w.live && w.drawn {
		io.WriteString(w.w, ansiClearLine)
		w.drawn = false
	}
	fmt.Fprintln(w.w, msg)
}

// approved ends a plain wait with a line, so that a log (a CI job, stderr
// redirected to a file) shows that the wait ended and how, not a
// "waiting" line as the last word. A refusal or failure needs none: it is
// returned as an error, which the command prints as its last line.
func (w *waiter) approved() {
	if !w.live {
		fmt.Fprintln(w.w, "approved: tokens received")
	}
}

// done removes the countdown line.
func (w *waiter) done() {
	if w.live && w.drawn {
		io.WriteString(w.w, ansiClearLine)
		w.drawn = false
	}
}

// clock formats d, rounded up to whole seconds, as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64((d + time.Second - 1) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
