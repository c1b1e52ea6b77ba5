package envoy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/auth/bearer"
	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// limitedEnvoy runs the shipped bootstrap (loopback rewrite) with the given
// token bucket (nil keeps the shipped one) and the tenantgate cluster at
// tenantgatePort (plaintext gRPC). With tenantgatePort 0 nothing listens there, and nothing
// ever listens on the Bedrock port: a request that passes the rate limit
// is answered 503 by ext_authz, which fails closed. edit, if not nil, may
// change the rewritten bootstrap before Envoy starts.
func limitedEnvoy(t *testing.T, bucket *stack.TokenBucket, tenantgatePort int, edit ...func(doc map[string]any)) (addr, adminURL string, client *tls.Config) {
	t.Helper()
	bin := envoyBin(t)
	dir := t.TempDir()
	certs, err := stack.WriteCerts(dir, envoy.Regions)
	if err != nil {
		t.Fatal(err)
	}
	admin, public, mesh := stack.FreePort(t), stack.FreePort(t), stack.FreePort(t)
	if tenantgatePort == 0 {
		tenantgatePort = stack.FreePort(t)
	}
	cfg, err := stack.RewriteBootstrap(envoy.Bootstrap, stack.EnvoyPorts{
		Admin: admin, Public: public, Mesh: mesh, Tenantgate: tenantgatePort, Bedrock: stack.FreePort(t),
		ServerCert: certs.EnvoyCert, ServerKey: certs.EnvoyKey, MeshCA: certs.CA, UpstreamCA: certs.CA,
		RateLimit: bucket,
		// The tests' stand-in tenantgate serves plaintext gRPC.
		TenantgateLink: stack.LinkPlaintext,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(edit) > 0 {
		var doc map[string]any
		if err := yaml.Unmarshal(cfg, &doc); err != nil {
			t.Fatal(err)
		}
		for _, e := range edit {
			e(doc)
		}
		if cfg, err = yaml.Marshal(doc); err != nil {
			t.Fatal(err)
		}
	}
	stack.RunEnvoy(t, bin, string(cfg), public, admin)
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return fmt.Sprintf("127.0.0.1:%d", public), fmt.Sprintf("http://127.0.0.1:%d", admin),
		&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// TestRateLimitThrottlesLikeAWS sends more requests than the listener's
// token bucket holds: the first ones reach ext_authz (503, tenantgate is
// down), every later one is cut by the local rate limit before it, and the
// Bedrock SDK reads that answer as a ThrottlingException. The raw 429
// carries tenantgate's stable code and a JSON message.
func TestRateLimitThrottlesLikeAWS(t *testing.T) {
	const tokens, extra = 3, 4
	addr, admin, tlsCfg := limitedEnvoy(t, &stack.TokenBucket{MaxTokens: tokens, TokensPerFill: 1, FillInterval: time.Hour}, 0)
	client := bedrockruntime.New(bedrockruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("https://" + addr),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone(), ForceAttemptHTTP2: true}},
		// A caller with a (here unchecked) Bedrock API key / Supabase token.
		BearerAuthTokenProvider: bearer.StaticTokenProvider{Token: bearer.Token{Value: "not-checked-before-the-rate-limit"}},
		AuthSchemePreference:    []string{"httpBearerAuth"},
		// The SDK would retry a throttled call; count single attempts.
		RetryMaxAttempts: 1,
	})
	for i := range tokens + extra {
		_, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{
			ModelId: aws.String("anthropic.claude-3-haiku-20240307-v1:0"),
			Messages: []types.Message{{Role: types.ConversationRoleUser,
				Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}},
		})
		var throttled *types.ThrottlingException
		var re *awshttp.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("request %d: %v, want an HTTP error response", i, err)
		}
		switch {
		case i < tokens:
			if errors.As(err, &throttled) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
				t.Errorf("request %d (within the bucket): status %d %v, want 503 from ext_authz", i, re.HTTPStatusCode(), err)
			}
			// Envoy's own fail-closed answer reads like tenantgate's
			// catalogued unavailable: a ServiceUnavailableException.
			var unavailable *types.ServiceUnavailableException
			if !errors.As(err, &unavailable) || unavailable.ErrorMessage() != apierror.New(apierror.Unavailable).Text {
				t.Errorf("request %d (tenantgate down): %v, want ServiceUnavailableException %q", i, err, apierror.New(apierror.Unavailable).Text)
			}
		default:
			if !errors.As(err, &throttled) || re.HTTPStatusCode() != http.StatusTooManyRequests {
				t.Fatalf("request %d (bucket empty): status %d %v, want 429 ThrottlingException", i, re.HTTPStatusCode(), err)
			}
			if throttled.ErrorMessage() != "Too many requests" {
				t.Errorf("request %d: throttling message %q", i, throttled.ErrorMessage())
			}
		}
	}

	tr := &http.Transport{TLSClientConfig: tlsCfg.Clone()}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/model/m/converse", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer not-checked-before-the-rate-limit")
	resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		Type    string `json:"__type"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Errorf("body %q is not JSON: %v", raw, err)
	}
	want := apierror.New(apierror.RateLimited)
	checks := []struct{ what, got, want string }{
		{"protocol", resp.Proto, "HTTP/1.1"},
		{"status", fmt.Sprint(resp.StatusCode), "429"},
		{"x-amzn-errortype", resp.Header.Get("x-amzn-errortype"), "ThrottlingException"},
		{"x-tenantgate-error", resp.Header.Get("x-tenantgate-error"), "rate_limited"},
		{"content-type", resp.Header.Get("content-type"), "application/json"},
		{"retry-after", resp.Header.Get("retry-after"), want.RetryAfter},
		{"body __type", body.Type, string(want.Type)},
		{"body error", body.Error, "rate_limited"},
		{"body message", body.Message, want.Text},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q (body %q)", c.what, c.got, c.want, raw)
		}
	}

	// Operators see the cut requests in this counter (docs/operations.md).
	const stat = "listener_rate_limit.http_local_rate_limit.rate_limited"
	sresp, err := http.Get(admin + "/stats?filter=rate_limit")
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	stats, _ := io.ReadAll(sresp.Body)
	if want := fmt.Sprintf("%s: %d\n", stat, extra+1); !strings.Contains(string(stats), want) {
		t.Errorf("stats:\n%s\nwant the line %q", stats, want)
	}
	oresp, err := http.Get(admin + "/stats?filter=^overload")
	if err != nil {
		t.Fatal(err)
	}
	defer oresp.Body.Close()
	ostats, _ := io.ReadAll(oresp.Body)
	for _, name := range []string{
		"overload.envoy.resource_monitors.fixed_heap.pressure",
		"overload.envoy.resource_monitors.global_downstream_max_connections.pressure",
		"overload.envoy.overload_actions.stop_accepting_requests.active",
		"overload.envoy.overload_actions.reset_high_memory_stream.scale_percent",
	} {
		if !strings.Contains(string(ostats), name+": ") {
			t.Errorf("no overload stat %s:\n%s", name, ostats)
		}
	}
}

// TestOverloadManagerRefusesRequests runs the shipped overload manager
// with a heap limit Envoy is already above: the monitor reports the
// pressure, stop_accepting_requests becomes active, and a request is
// refused by Envoy itself (503 "envoy overloaded", access log details
// "overload") before any filter runs.
// The admin interface stays reachable.
func TestOverloadManagerRefusesRequests(t *testing.T) {
	const tinyHeap = 1 << 20
	addr, admin, tlsCfg := limitedEnvoy(t, nil, 0, func(doc map[string]any) {
		mons, _ := lookup(doc, "overload_manager", "resource_monitors")
		heap, ok := byName(mons, "envoy.resource_monitors.fixed_heap")
		if !ok {
			t.Fatal("no fixed_heap monitor")
		}
		heap.(map[string]any)["typed_config"].(map[string]any)["max_heap_size_bytes"] = tinyHeap
	})
	const active = "overload.envoy.overload_actions.stop_accepting_requests.active: 1"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(admin + "/stats?filter=^overload")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), active) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stop_accepting_requests never became active:\n%s", b)
		}
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg.Clone()}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: tr}).Get("https://" + addr + "/model/m/converse")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Answered like tenantgate's catalogued unavailable, so SDKs retry.
	want := apierror.New(apierror.Unavailable)
	var got, wantBody map[string]any
	_ = json.Unmarshal(body, &got)
	_ = json.Unmarshal(want.Body(), &wantBody)
	if resp.StatusCode != want.Status || !reflect.DeepEqual(got, wantBody) ||
		resp.Header.Get("x-amzn-errortype") != string(want.Type) || resp.Header.Get("x-tenantgate-error") != string(want.Code) {
		t.Errorf("under overload: %d %v %q, want %d %s from the overload manager", resp.StatusCode, resp.Header, body, want.Status, want.Body())
	}
	sresp, err := http.Get(admin + "/stats?filter=rate_limit")
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := io.ReadAll(sresp.Body)
	sresp.Body.Close()
	if !strings.Contains(string(stats), "listener_rate_limit.http_local_rate_limit.enabled: 0") {
		t.Errorf("the request reached the filter chain:\n%s", stats)
	}
}

// TestHTTP2AdvertisesShippedLimits opens an HTTP/2 connection to the
// shipped listener and reads the server's SETTINGS and connection
// WINDOW_UPDATE: the concurrent-stream limit and both flow-control windows
// are the ones envoy.yaml configures (without them Envoy 1.40 advertises
// 1024 streams and windows of 16 MiB per stream, 24 MiB per connection).
// The client opens with the HTTP/2 preface without asking for h2 by ALPN:
// the listener's AUTO codec speaks HTTP/2 to any client that does,
// whatever ALPN offers.
func TestHTTP2AdvertisesShippedLimits(t *testing.T) {
	h2 := field(shippedDoc(t), "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0,
		"typed_config", "http2_protocol_options")
	want := map[string]int{
		"max_concurrent_streams":         toInt(field(h2, "max_concurrent_streams")),
		"initial_stream_window_size":     toInt(field(h2, "initial_stream_window_size")),
		"initial_connection_window_size": toInt(field(h2, "initial_connection_window_size")),
	}
	for k, v := range want {
		if v <= 0 {
			t.Fatalf("shipped http2_protocol_options.%s is not set", k)
		}
	}
	addr, _, tlsCfg := limitedEnvoy(t, nil, 0)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := conn.Write(clientPreface()); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var sawSettings, sawWindow bool
	for !sawSettings || !sawWindow {
		f, err := readFrame(conn)
		if err != nil {
			t.Fatalf("reading frames (settings seen %v, window update seen %v): %v", sawSettings, sawWindow, err)
		}
		switch {
		case f.typ == frameSettings && f.flags&flagAck == 0:
			sawSettings = true
			for i := 0; i+6 <= len(f.payload); i += 6 {
				v := int(binary.BigEndian.Uint32(f.payload[i+2 : i+6]))
				switch binary.BigEndian.Uint16(f.payload[i : i+2]) {
				case settingMaxStreams:
					got["max_concurrent_streams"] = v
				case settingWindow:
					got["initial_stream_window_size"] = v
				}
			}
		case f.typ == frameWindowUpdate && f.stream == 0:
			sawWindow = true
			got["initial_connection_window_size"] = defaultWindow + int(binary.BigEndian.Uint32(f.payload)&0x7fffffff)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s advertised %d, want %d", k, got[k], v)
		}
	}
}

// Just enough HTTP/2 (RFC 9113) framing to read what a server advertises
// and to open streams, without negotiating h2 by ALPN.
const (
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	flagAck           = 0x1
	flagEndStream     = 0x1
	flagEndHeaders    = 0x4
	settingMaxStreams = 0x3
	settingWindow     = 0x4
	defaultWindow     = 65535 // RFC 9113 6.9.2: every window starts here
)

type frame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
}

func readFrame(r io.Reader) (frame, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	f := frame{typ: hdr[3], flags: hdr[4], stream: binary.BigEndian.Uint32(hdr[5:9]) & 0x7fffffff,
		payload: make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))}
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

func appendFrame(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}

// clientPreface is the connection preface and an empty SETTINGS frame.
func clientPreface() []byte {
	return appendFrame([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frameSettings, 0, 0, nil)
}

// getRequest is a complete GET / request on stream id: HPACK static-table
// entries for :method GET, :scheme https and :path /, and :authority as a
// literal without indexing (RFC 7541), so no dynamic table is involved.
func getRequest(b []byte, id uint32, authority string) []byte {
	block := append([]byte{0x82, 0x87, 0x84, 0x01, byte(len(authority))}, authority...)
	return appendFrame(b, frameHeaders, flagEndStream|flagEndHeaders, id, block)
}
