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
// for every name under .invalid). It counts the questions.
type nxdomainServer struct {
	conn      net.PacketConn
	questions atomic.Int64
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
// an outage. Under caddy validate (IssuerMustResolve) it fails the load;
// a running service says at error level, once, that the name does not
// resolve, answers 503 and keeps looking.
func TestIssuerHostDoesNotResolve(t *testing.T) {
	dns := startNXDOMAIN(t)
	const issuer = "https://idp.exmaple.invalid/realms/main"

	_, err := flow.Discover(context.Background(), dns.client(), issuer)
	if !errors.Is(err, flow.ErrIssuerHostNotFound) || !errors.Is(err, flow.ErrIssuerUnreachable) {
		t.Fatalf("Discover: %v, want a host that does not resolve (an outage too)", err)
	}

	cfg := issuerConfig(t, issuer)
	cfg.HTTPClient = dns.client()
	cfg.IssuerMustResolve = true
	if svc, err := flow.New(context.Background(), cfg); err == nil {
		svc.Close()
		t.Fatal("New accepted an issuer whose host does not resolve under IssuerMustResolve")
	} else if !strings.Contains(err.Error(), "issuer host does not resolve (probably a typo)") || !strings.Contains(err.Error(), "idp.exmaple.invalid") {
		t.Fatalf("New: %v, want it to say the host does not resolve and name it", err)
	}

	core, logs := observer.New(zap.DebugLevel)
	cfg.IssuerMustResolve, cfg.Logger = false, zap.New(core)
	before := dns.questions.Load()
	svc, err := flow.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New at run time: %v", err)
	}
	t.Cleanup(svc.Close)
	atStart := dns.questions.Load() - before
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	resp, err := http.PostForm(srv.URL+"/device/code", url.Values{"client_id": {"tv"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("device code: %d, want 503 while the name does not resolve", resp.StatusCode)
	}
	// The background discovery looks again after 1 s and 2 s more.
	deadline := time.Now().Add(15 * time.Second)
	for dns.questions.Load()-before < 3*atStart {
		if time.Now().After(deadline) {
			t.Fatalf("no second retry: %d questions, %d at start", dns.questions.Load()-before, atStart)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lines := logs.FilterMessageSnippet("does not resolve").All()
	if len(lines) != 1 || lines[0].Level != zapcore.ErrorLevel {
		t.Fatalf("want one error line saying the name does not resolve, got %v", logs.All())
	}
	if !strings.Contains(lines[0].Message, "probably a typo") {
		t.Errorf("the line does not suggest a typo: %q", lines[0].Message)
	}
}
