package flow_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// nxdomainServer is a DNS server on loopback that answers every question
// with NXDOMAIN, as the DNS does for a misspelt name (and, by RFC 6761,
// for every name under .invalid), or with SERVFAIL (a DNS outage) while
// failing is set. It counts the questions.
type nxdomainServer struct {
	conn      net.PacketConn
	questions atomic.Int64
	failing   atomic.Bool
}

func startNXDOMAIN(t *testing.T) *nxdomainServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &nxdomainServer{conn: conn}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			s.questions.Add(1)
			// The query itself, turned into an answer: QR, the query's
			// opcode and RD, RA, rcode 3 (NXDOMAIN), no answers.
			resp := append([]byte(nil), buf[:n]...)
			resp[2] = 0x80 | resp[2]&0x79
			resp[3] = 0x80 | 3
			if s.failing.Load() {
				resp[3] = 0x80 | 2
			}
			resp[6], resp[7], resp[8], resp[9] = 0, 0, 0, 0
			conn.WriteTo(resp, from)
		}
	}()
	return s
}

// client is an HTTP client whose names are looked up at s.
func (s *nxdomainServer) client() *http.Client {
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", s.conn.LocalAddr().String())
	}}
	return &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Resolver: resolver}).DialContext}}
}

// TestIssuerHostDoesNotResolve: a misspelt issuer host is told apart from
// an outage. At load (caddy validate, run, reload alike) it is a
// configuration error naming the host. A name that stops resolving once
// the service runs is said at error level, once, while it answers 503
// and keeps looking.
func TestIssuerHostDoesNotResolve(t *testing.T) {
	dns := startNXDOMAIN(t)
	const issuer = "https://idp.exmaple.invalid/realms/main"

	_, err := flow.Discover(context.Background(), dns.client(), issuer)
	if !errors.Is(err, flow.ErrIssuerHostNotFound) || !errors.Is(err, flow.ErrIssuerUnreachable) {
		t.Fatalf("Discover: %v, want a host that does not resolve (an outage too)", err)
	}

	cfg := issuerConfig(t, issuer)
	cfg.HTTPClient = dns.client()
	if svc, err := flow.New(context.Background(), cfg); err == nil {
		svc.Close()
		t.Fatal("New accepted an issuer whose host does not resolve")
	} else if !strings.Contains(err.Error(), "issuer host does not resolve (probably a typo)") || !strings.Contains(err.Error(), "idp.exmaple.invalid") {
		t.Fatalf("New: %v, want it to say the host does not resolve and name it", err)
	}

	// A DNS outage at load is an outage: the service starts.
	dns.failing.Store(true)
	core, logs := observer.New(zap.DebugLevel)
	cfg.Logger = zap.New(core)
	svc, err := flow.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New with the DNS down: %v", err)
	}
	t.Cleanup(svc.Close)
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	// Then the name stops existing: the background discovery, looking
	// again after 1 s and 2 s more, says so once and goes on looking.
	before := dns.questions.Load()
	dns.failing.Store(false)
	deadline := time.Now().Add(15 * time.Second)
	for len(logs.FilterMessageSnippet("does not resolve").All()) == 0 || dns.questions.Load() == before {
		if time.Now().After(deadline) {
			t.Fatalf("no retry saw the name gone: %d questions since; logs %v", dns.questions.Load()-before, logs.All())
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := dns.questions.Load()
	for dns.questions.Load() == seen {
		if time.Now().After(deadline) {
			t.Fatal("no retry after the name stopped resolving")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.PostForm(srv.URL+"/device/code", url.Values{"client_id": {"tv"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("device code: %d, want 503 while the name does not resolve", resp.StatusCode)
	}
	lines := logs.FilterMessageSnippet("does not resolve").All()
	if len(lines) != 1 || lines[0].Level != zapcore.ErrorLevel {
		t.Fatalf("want one error line saying the name does not resolve, got %v", logs.All())
	}
	if !strings.Contains(lines[0].Message, "probably a typo") {
		t.Errorf("the line does not suggest a typo: %q", lines[0].Message)
	}
}
