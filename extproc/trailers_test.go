package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// h2cClient speaks HTTP/2 with prior knowledge over cleartext, as a client
// of Envoy's AUTO codec may.
func h2cClient() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// sendWithTrailers sends one HTTP/2 request with request trailers through
// Envoy: HEADERS, DATA (unless body is nil) and a trailing HEADERS frame
// that ends the stream. The request names the upstream Bedrock host as its
// :authority, as an attacker would, so that an unsigned request would be
// routed upstream. It returns the response status and body.
func sendWithTrailers(t *testing.T, listen int, tenantName, path string, body []byte) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", listen), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	status, rb, err := stack.H2Do(conn, stack.H2Request{
		Headers: [][2]string{
			{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "bedrock-runtime.us-east-1.amazonaws.com"},
			{"authorization", "Bearer user-jwt-token"}, {"content-type", "application/json"}, {"x-test-tenant", tenantName},
		},
		Body:     body,
		Trailers: [][2]string{{"x-checksum", "abc"}},
	}, 30*time.Second)
	if err != nil {
		t.Fatalf("%v (status %d, body %s)", err, status, rb)
	}
	return status, rb
}

// TestEnvoyRequestTrailers: an HTTP/2 request with trailers makes Envoy
// deliver the buffered body with end_of_stream=false (or no body at all).
// Whatever Envoy's request_trailer_mode, the upstream sees either a request
// with a valid signature or nothing; tenantgate refuses trailers with 400.
func TestEnvoyRequestTrailers(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	for _, mode := range []string{"SEND", "SKIP"} {
		t.Run(mode, func(t *testing.T) {
			w := newAWSWorld(t, 3)
			listen := startEnvoyTrailers(t, w.srv, w.bedrock, true, false, mode)
			cases := []struct {
				name, tenant string
				body         []byte
			}{
				{"platform body then trailers", "pro", body},
				{"tenant body then trailers", "enterprise:acct-01", body},
				{"platform trailers without body", "pro", nil},
				{"tenant trailers without body", "enterprise:acct-01", nil},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					w.bedrock.ResetRecords()
					status, rb := sendWithTrailers(t, listen, tc.tenant, haikuPath, tc.body)
					for _, rec := range w.bedrock.Records() {
						if rec.PrincipalARN == "" || rec.Status != http.StatusOK {
							t.Fatalf("upstream received a request without a valid signature: status %d principal %q", rec.Status, rec.PrincipalARN)
						}
					}
					if status != http.StatusBadRequest {
						t.Fatalf("status %d (%s), want 400", status, rb)
					}
					var e struct{ Error string }
					if err := json.Unmarshal(rb, &e); err != nil || e.Error != "trailers_not_supported" {
						t.Fatalf("body %s, want error trailers_not_supported", rb)
					}
					if n := len(w.bedrock.Records()); n != 0 {
						t.Fatalf("upstream saw %d requests, want none", n)
					}
				})
			}
			// A request without trailers on the same connection kind is signed.
			w.bedrock.ResetRecords()
			req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d", listen), bytes.NewReader(body))
			req.URL.Opaque = haikuPath
			req.Host = "gateway.example.com"
			req.Header.Set("X-Test-Tenant", "pro")
			req.Header.Set("Content-Type", "application/json")
			resp, err := h2cClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(rb), "output") {
				t.Fatalf("request without trailers: %d %s", resp.StatusCode, rb)
			}
			if recs := w.bedrock.Records(); len(recs) != 1 || recs[0].PrincipalARN != fakePlatformARN {
				t.Fatalf("records %+v", recs)
			}
		})
	}
}

// TestProcessingPaths covers every way a request's messages can arrive:
// each one ends signed or refused, never with a bare CONTINUE.
func TestProcessingPaths(t *testing.T) {
	body := []byte(`{"a":1}`)
	hs := clientHeaders("POST", haikuPath)
	headers := func(eos bool) *extprocv3.ProcessingRequest { return headersMsg(entID, eos, hs...) }
	trailers := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}
	cases := []struct {
		name   string
		msgs   []*extprocv3.ProcessingRequest
		signed []byte // body signed over by the last reply; nil: refused
		refuse outcome
	}{
		{name: "headers end of stream", msgs: []*extprocv3.ProcessingRequest{headers(true)}, signed: []byte{}},
		{name: "body end of stream", msgs: []*extprocv3.ProcessingRequest{headers(false), bodyMsg(body, true)}, signed: body},
		{name: "empty body end of stream", msgs: []*extprocv3.ProcessingRequest{headers(false), bodyMsg(nil, true)}, signed: []byte{}},
		// Envoy sends the buffered body without end_of_stream when
		// trailers follow: it is refused there, the trailers never come.
		{name: "body then trailers", msgs: []*extprocv3.ProcessingRequest{headers(false), bodyMsg(body, false), trailers}, refuse: outcome{400, "trailers_not_supported"}},
		{name: "trailers without body", msgs: []*extprocv3.ProcessingRequest{headers(false), trailers}, refuse: outcome{400, "trailers_not_supported"}},
		// Should an Envoy send trailers after an end_of_stream body.
		{name: "trailers after signed body", msgs: []*extprocv3.ProcessingRequest{headers(false), bodyMsg(body, true), trailers}, refuse: outcome{400, "trailers_not_supported"}},
		{name: "trailers alone", msgs: []*extprocv3.ProcessingRequest{trailers}, refuse: outcome{400, "trailers_not_supported"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
			st := &streamState{}
			out := toMap(hs)
			var last *extprocv3.ProcessingResponse
			for i, m := range tc.msgs {
				last = s.handle(context.Background(), st, m)
				if last.GetImmediateResponse() != nil {
					break // Envoy answers the client and sends nothing more
				}
				var mut *extprocv3.HeaderMutation
				switch {
				case last.GetRequestHeaders() != nil:
					mut = last.GetRequestHeaders().GetResponse().GetHeaderMutation()
				case last.GetRequestBody() != nil:
					mut = last.GetRequestBody().GetResponse().GetHeaderMutation()
				default:
					t.Fatalf("message %d answered with %T, neither signed nor refused", i, last.GetResponse())
				}
				out = applyMutation(t, out, mut)
			}
			if !st.done {
				t.Fatal("stream not settled: the request would go on unsigned")
			}
			if tc.signed == nil {
				if got := immediateOf(t, last); got != tc.refuse {
					t.Fatalf("got %+v, want %+v", got, tc.refuse)
				}
				return
			}
			if key, err := verifySigV4(out, "POST", haikuPath, tc.signed, "bedrock"); err != nil || key != "ASIAacct-ent" {
				t.Fatalf("key=%s err=%v", key, err)
			}
		})
	}
}

// TestModeOverrideSendsTrailers: the mode tenantgate asks for when a body
// follows makes Envoy send request trailers, whatever its configured mode.
func TestModeOverrideSendsTrailers(t *testing.T) {
	s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
	r := s.handle(context.Background(), &streamState{}, headersMsg(proID, false, clientHeaders("POST", haikuPath)...))
	m := r.GetModeOverride()
	if m.GetRequestBodyMode() != filterv3.ProcessingMode_BUFFERED || m.GetRequestTrailerMode() != filterv3.ProcessingMode_SEND {
		t.Fatalf("mode override %v", m)
	}
}
