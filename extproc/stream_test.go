package extproc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
)

// scriptStream is an in-memory Process stream.
type scriptStream struct {
	grpc.ServerStream
	ctx  context.Context
	in   []*extprocv3.ProcessingRequest
	end  error
	sent []*extprocv3.ProcessingResponse
}

func (s *scriptStream) Context() context.Context     { return s.ctx }
func (s *scriptStream) SetHeader(metadata.MD) error  { return nil }
func (s *scriptStream) SendHeader(metadata.MD) error { return nil }
func (s *scriptStream) SetTrailer(metadata.MD)       {}
func (s *scriptStream) Send(r *extprocv3.ProcessingResponse) error {
	s.sent = append(s.sent, r)
	return nil
}

func (s *scriptStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if len(s.in) == 0 {
		return nil, s.end
	}
	r := s.in[0]
	s.in = s.in[1:]
	return r, nil
}

func TestProcessStreamEnds(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name    string
		ctx     context.Context
		end     error
		wantErr bool
	}{
		{"envoy closes", context.Background(), io.EOF, false},
		{"client cancel", cancelled, context.Canceled, false},
		{"transport error", context.Background(), errors.New("connection reset"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s, err := New(Options{Config: testExtProcConfig(), Platform: newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{}).platform,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, defaultRoutes(), &fakeCreds{})
			if err != nil {
				t.Fatal(err)
			}
			st := &scriptStream{ctx: tc.ctx, end: tc.end, in: []*extprocv3.ProcessingRequest{
				headersMsg(entID, false, clientHeaders("POST", haikuPath)...),
				bodyMsg([]byte(`{}`), true),
			}}
			err = s.Process(st)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Process err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(st.sent) != 2 || st.sent[1].GetRequestBody() == nil {
				t.Fatalf("sent %d responses", len(st.sent))
			}
			if !tc.wantErr && strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("quiet end logged a warning: %s", logs.String())
			}
		})
	}
}

// TestLogsAndMetrics: logs name account, region, operation, model and signer
// but never keys, tokens or signatures; metrics count outcomes.
func TestLogsAndMetrics(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	routes := defaultRoutes()
	s, err := New(Options{
		Config:     testExtProcConfig(),
		Platform:   newTestServer(t, testExtProcConfig(), routes, &fakeCreds{}).platform,
		Logger:     slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: reg,
		Now:        func() time.Time { return testNow },
	}, routes, &fakeCreds{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []*struct {
		msgs []*extprocv3.ProcessingRequest
	}{
		{[]*extprocv3.ProcessingRequest{headersMsg(entID, false, clientHeaders("POST", haikuPath)...), bodyMsg([]byte(`{}`), true)}},
		{[]*extprocv3.ProcessingRequest{headersMsg(proID, true, clientHeaders("POST", haikuPath)...)}},
		{[]*extprocv3.ProcessingRequest{headersMsg(nil, true, clientHeaders("GET", "/async-invoke")...)}},
	} {
		if err := s.Process(&scriptStream{ctx: context.Background(), end: io.EOF, in: id.msgs}); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	for _, want := range []string{`"account_id":"acct-ent"`, `"region":"eu-west-1"`, `"operation":"Converse"`, `"model":"anthropic.claude-3-haiku-20240307-v1:0"`, `"signer":"tenant"`, `"signer":"platform"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"secret-acct-ent", "session-acct-ent", "ASIAacct-ent", "platform-secret", "AKIAPLATFORM", "user-jwt-token", "Signature=", "pk_a", "svc-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	counts := metricstest.Series(t, reg, "tenantgate_extproc_requests_total")
	for key, want := range map[string]float64{
		"kind=tenant,outcome=signed,region=eu-west-1,":   1,
		"kind=platform,outcome=signed,region=us-east-1,": 1,
		"kind=none,outcome=no_tenant,region=,":           1,
	} {
		if counts[key] != want {
			t.Errorf("metric %s = %v, want %v (all %v)", key, counts[key], want, counts)
		}
	}
}
