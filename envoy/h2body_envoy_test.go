package envoy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/net/http2"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// allowAll is an ext_authz server that allows every request.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// bodyCounter is an ext_proc server that, like tenantgate, asks for the
// BUFFERED body in its reply to the request headers, then answers the
// client directly with the number of body bytes Envoy delivered.
type bodyCounter struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (bodyCounter) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		var resp *extprocv3.ProcessingResponse
		switch r := req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp = &extprocv3.ProcessingResponse{
				Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
				ModeOverride: &filterv3.ProcessingMode{
					RequestHeaderMode: filterv3.ProcessingMode_SEND, RequestBodyMode: filterv3.ProcessingMode_BUFFERED,
					ResponseHeaderMode: filterv3.ProcessingMode_SKIP, ResponseBodyMode: filterv3.ProcessingMode_NONE,
				},
			}
		case *extprocv3.ProcessingRequest_RequestBody:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
				ImmediateResponse: &extprocv3.ImmediateResponse{
					Status: &typev3.HttpStatus{Code: typev3.StatusCode_OK},
					Body:   fmt.Appendf(nil, "received %d", len(r.RequestBody.GetBody())),
				}}}
		default:
			return nil
		}
		if err := s.Send(resp); err != nil {
			return nil
		}
	}
}

// TestHTTP2LargeBodyIsBuffered sends over HTTP/2 a body almost as large as
// Envoy's buffer limit, far larger than the connection window, to a filter
// chain whose ext_proc buffers the whole body the way tenantgate does to
// sign it: ext_proc receives every byte. Envoy acknowledges a stream's data
// only when the filters release it, so with a stream window smaller than
// the body (64 KiB, say) the upload stalls until the request times out.
func TestHTTP2LargeBodyIsBuffered(t *testing.T) {
	limit := toInt(field(shippedDoc(t), "static_resources", "listeners", 0, "per_connection_buffer_limit_bytes"))
	if limit <= 1<<20 {
		t.Fatalf("shipped per_connection_buffer_limit_bytes = %d", limit)
	}
	size := limit - 1<<20 // headroom for headers and framing

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Envoy sends the buffered body in one message; tenantgate accepts
	// bodies up to its 10 MiB limit the same way.
	g := grpc.NewServer(grpc.MaxRecvMsgSize(16 << 20))
	authv3.RegisterAuthorizationServer(g, allowAll{})
	extprocv3.RegisterExternalProcessorServer(g, bodyCounter{})
	healthpb.RegisterHealthServer(g, health.NewServer())
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	addr, _, tlsCfg := limitedEnvoy(t, nil, lis.Addr().(*net.TCPAddr).Port)

	// HTTP/2 by prior knowledge: the client opens with the HTTP/2 preface.
	tr := &http2.Transport{DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
		d := tls.Dialer{Config: tlsCfg}
		return d.DialContext(ctx, network, a)
	}}
	defer tr.CloseIdleConnections()
	body := bytes.Repeat([]byte("x"), size)
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/model/m/invoke", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || string(got) != fmt.Sprintf("received %d", len(body)) {
		t.Errorf("%s %d %q, want HTTP/2 200 %q", resp.Proto, resp.StatusCode, got, fmt.Sprintf("received %d", len(body)))
	}
}
