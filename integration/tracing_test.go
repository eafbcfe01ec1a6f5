package integration

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// spans is where Caddy's tracing directive exports in these tests: an
// in-memory exporter registered with autoexport under a name the tests put
// in OTEL_TRACES_EXPORTER, which is how Caddy picks its exporter.
var (
	spans         = tracetest.NewInMemoryExporter()
	registerSpans sync.Once
)

const spanExporterName = "device_flow_test_memory"

// TestTracingUpstreamCalls: with Caddy's tracing directive, the token
// exchange at the callback and the refresh relay at /device/token are
// client spans under the request's span, and no secret is in any span.
func TestTracingUpstreamCalls(t *testing.T) {
	registerSpans.Do(func() {
		autoexport.RegisterSpanExporter(spanExporterName, func(context.Context) (sdktrace.SpanExporter, error) { return spans, nil })
	})
	t.Setenv("OTEL_TRACES_EXPORTER", spanExporterName)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10") // milliseconds: export at once
	spans.Reset()

	up := startUpstream(t)
	config := siteConfig(t, up, "")
	config = strings.Replace(config, testSite+" {\n", testSite+" {\n\ttracing {\n\t\tspan device_flow\n\t}\n", 1)
	startCaddy(t, config)
	clientID := up.Config().ClientID

	tv := newDevice(t, clientID, "openid profile")
	b := newBrowser(t)
	var callback *url.URL
	b.client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/auth/redirect" {
			callback = req.URL
		}
		return nil
	}
	if done := b.approve(tv.userCode()); !done.is("success") {
		t.Fatalf("approve: %d\n%s", done.status, done.body)
	}
	status, tokens := tv.poll()
	if status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, tokens)
	}
	refresh, _ := tokens["refresh_token"].(string)
	status, refreshed, _ := postForm(t, "/device/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID},
	})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, refreshed)
	}

	// Each upstream call is a client span whose parent is the span of the
	// request that made it.
	want := map[string]bool{"/auth/redirect": false, "/device/token": false}
	var got []tracetest.SpanStub
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = spans.GetSpans()
		for path := range want {
			want[path] = upstreamSpanUnder(got, path, up.TokenEndpoint())
		}
		if want["/auth/redirect"] && want["/device/token"] {
			break
		}
	}
	for path, seen := range want {
		if !seen {
			t.Errorf("no client span to %s under the span of the request to %s; spans:\n%s", up.TokenEndpoint(), path, describeSpans(got))
		}
	}

	// No secret in any name, attribute, status or event.
	secrets := map[string]string{
		"client secret":      up.Config().ClientSecret,
		"authorization code": callback.Query().Get("code"),
		"state":              callback.Query().Get("state"),
		"device code":        tv.deviceCode(),
		"access token":       tokens["access_token"].(string),
		"refresh token":      refresh,
		"new access token":   refreshed["access_token"].(string),
	}
	for _, s := range got {
		for _, text := range spanTexts(s) {
			for what, secret := range secrets {
				if secret != "" && strings.Contains(text, secret) {
					t.Errorf("span %q carries the %s: %q", s.Name, what, text)
				}
			}
			// Nothing of a token request's form or its Basic credentials.
			for _, field := range []string{"code_verifier", "client_secret", "refresh_token=", "Basic "} {
				if strings.Contains(text, field) {
					t.Errorf("span %q carries %q: %q", s.Name, field, text)
				}
			}
		}
	}
}

// upstreamSpanUnder reports whether a client span to endpoint has as
// parent the server span of a request to path.
func upstreamSpanUnder(spans []tracetest.SpanStub, path, endpoint string) bool {
	byID := make(map[trace.SpanID]tracetest.SpanStub, len(spans))
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	for _, s := range spans {
		if s.SpanKind != trace.SpanKindClient || attr(s, "url.full") != endpoint {
			continue
		}
		parent, ok := byID[s.Parent.SpanID()]
		if ok && parent.SpanKind == trace.SpanKindServer && attr(parent, "url.path") == path &&
			parent.SpanContext.TraceID() == s.SpanContext.TraceID() {
			return true
		}
	}
	return false
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// spanTexts is everything a span would show in a tracing backend.
func spanTexts(s tracetest.SpanStub) []string {
	texts := []string{s.Name, s.Status.Description}
	for _, a := range s.Attributes {
		texts = append(texts, string(a.Key)+"="+a.Value.Emit())
	}
	for _, e := range s.Events {
		texts = append(texts, e.Name)
		for _, a := range e.Attributes {
			texts = append(texts, string(a.Key)+"="+a.Value.Emit())
		}
	}
	return texts
}

func describeSpans(spans []tracetest.SpanStub) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString(s.SpanKind.String() + " " + s.Name + " " + s.SpanContext.SpanID().String() + " parent " + s.Parent.SpanID().String() +
			" url.path=" + attr(s, "url.path") + " url.full=" + attr(s, "url.full") + "\n")
	}
	return b.String()
}
