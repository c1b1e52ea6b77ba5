package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const testService = "tenantgate.test.Slow"

// slowService is a hand-written gRPC service whose Do method runs fn.
func registerSlow(g *grpc.Server, fn func(ctx context.Context) error) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: testService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Do",
			Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					if err := fn(ctx); err != nil {
						return nil, err
					}
					return &emptypb.Empty{}, nil
				}
				if ic == nil {
					return h(ctx, in)
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/" + testService + "/Do"}, h)
			},
		}},
	}, struct{}{})
}

type harness struct {
	srv    *Server
	reg    *prometheus.Registry
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	conn   *grpc.ClientConn
	base   string
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, opts Options, slow func(ctx context.Context) error) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), logs: newSyncBuffer(), done: make(chan error, 1)}
	opts.GRPCListen = "127.0.0.1:0"
	opts.HTTPListen = "127.0.0.1:0"
	opts.Registry = h.reg
	opts.Logger = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.ReadyInterval == 0 {
		opts.ReadyInterval = 20 * time.Millisecond
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	if slow != nil {
		registerSlow(srv.GRPC(), slow)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- srv.Serve(ctx) }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.conn = conn
	h.base = "http://" + srv.HTTPAddr().String()
	t.Cleanup(func() {
		cancel()
		conn.Close()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return h
}

func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(h.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) healthStatus(t *testing.T, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health check %q: %v", service, err)
	}
	return resp.GetStatus()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHealthz(t *testing.T) {
	h := start(t, Options{}, nil)
	code, body := h.get(t, "/healthz")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(body), &m); err != nil || m["status"] != "ok" {
		t.Fatalf("body %q (%v)", body, err)
	}
	resp, err := http.Post(h.base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestReadinessFlips(t *testing.T) {
	var storeErr atomic.Pointer[error]
	secret := "postgres://u:hunter2@db/x"
	h := start(t, Options{Checks: []Check{
		{Name: "store", Fn: func(context.Context) error {
			if p := storeErr.Load(); p != nil {
				return *p
			}
			return nil
		}},
		{Name: "jwks", Fn: func(context.Context) error { return nil }},
	}}, func(context.Context) error { return nil })

	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantStatus string
		wantFailed []string
		wantHealth healthpb.HealthCheckResponse_ServingStatus
	}{
		{name: "ready", wantCode: 200, wantStatus: "ready", wantHealth: healthpb.HealthCheckResponse_SERVING},
		{name: "store down", err: errors.New("dial " + secret + ": refused"), wantCode: 503, wantStatus: "not_ready",
			wantFailed: []string{"store"}, wantHealth: healthpb.HealthCheckResponse_NOT_SERVING},
		{name: "recovered", wantCode: 200, wantStatus: "ready", wantHealth: healthpb.HealthCheckResponse_SERVING},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != nil {
				storeErr.Store(&tt.err)
			} else {
				storeErr.Store(nil)
			}
			code, body := h.get(t, "/readyz")
			if code != tt.wantCode {
				t.Fatalf("readyz = %d %s, want %d", code, body, tt.wantCode)
			}
			var got readyResponse
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus || strings.Join(got.Failed, ",") != strings.Join(tt.wantFailed, ",") {
				t.Errorf("readyz body = %+v", got)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("readyz leaks the check error: %s", body)
			}
			for _, svc := range []string{"", testService} {
				waitFor(t, "health of "+svc, func() bool { return h.healthStatus(t, svc) == tt.wantHealth })
			}
		})
	}
	// Check errors may carry dependency details; they are logged at debug
	// only and never answered.
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, "hunter2") && !strings.Contains(line, `"level":"DEBUG"`) {
			t.Errorf("check error logged above debug: %s", line)
		}
	}
}

func TestCheckTimeout(t *testing.T) {
	h := start(t, Options{CheckTimeout: 50 * time.Millisecond, Checks: []Check{
		{Name: "slow", Fn: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{Name: "panics", Fn: func(context.Context) error { panic("boom") }},
	}}, nil)
	code, body := h.get(t, "/readyz")
	var got readyResponse
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if code != 503 || got.Reasons["slow"] != "timeout" || got.Reasons["panics"] != "failed" {
		t.Fatalf("readyz = %d %+v", code, got)
	}
}

func TestMetricsServed(t *testing.T) {
	h := start(t, Options{}, func(context.Context) error { return status.Error(codes.NotFound, "nope") })
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantgate_test_component_total", Help: "x"})
	h.reg.MustRegister(extra)
	extra.Inc()
	err := h.conn.Invoke(context.Background(), "/"+testService+"/Do", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Do = %v", err)
	}
	_ = h.healthStatus(t, "")
	code, body := h.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("metrics = %d", code)
	}
	for _, want := range []string{
		`tenantgate_grpc_requests_total{code="NotFound",method="/tenantgate.test.Slow/Do"} 1`,
		`tenantgate_grpc_requests_total{code="OK",method="/grpc.health.v1.Health/Check"}`,
		`tenantgate_test_component_total 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics missing %q", want)
		}
	}
}

func TestPanicRecovered(t *testing.T) {
	var calls atomic.Int32
	h := start(t, Options{}, func(context.Context) error {
		if calls.Add(1) == 1 {
			panic("handler bug with token eyJsecret")
		}
		return nil
	})
	err := h.conn.Invoke(context.Background(), "/"+testService+"/Do", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "eyJ") {
		t.Fatalf("first call = %v, want Internal without the panic value", err)
	}
	if err := h.conn.Invoke(context.Background(), "/"+testService+"/Do", &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
		t.Fatalf("server did not survive the panic: %v", err)
	}
	_, body := h.get(t, "/metrics")
	if !strings.Contains(body, "tenantgate_grpc_panics_total 1") {
		t.Errorf("panic not counted")
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "grpc handler panicked") || strings.Contains(logs, "eyJsecret") {
		t.Errorf("panic log wrong: %s", logs)
	}
}

func TestGracefulDrain(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	h := start(t, Options{ShutdownGrace: 10 * time.Second}, func(ctx context.Context) error {
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	waitFor(t, "serving", func() bool { return h.healthStatus(t, "") == healthpb.HealthCheckResponse_SERVING })

	callErr := make(chan error, 1)
	go func() {
		callErr <- h.conn.Invoke(context.Background(), "/"+testService+"/Do", &emptypb.Empty{}, &emptypb.Empty{})
	}()
	<-entered
	h.cancel() // SIGTERM

	// While the call drains, readiness reports draining.
	waitFor(t, "readyz draining", func() bool {
		code, body := h.get(t, "/readyz")
		return code == 503 && strings.Contains(body, `"draining"`)
	})
	select {
	case err := <-h.done:
		t.Fatalf("Serve returned before the in-flight call finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-callErr; err != nil {
		t.Fatalf("in-flight call failed during drain: %v", err)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
		h.done <- nil // for Cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if _, err := http.Get(h.base + "/healthz"); err == nil {
		t.Error("HTTP still serving after shutdown")
	}
}

func TestShutdownGraceBounded(t *testing.T) {
	entered := make(chan struct{})
	h := start(t, Options{ShutdownGrace: 200 * time.Millisecond}, func(ctx context.Context) error {
		close(entered)
		<-ctx.Done() // never finishes on its own
		return ctx.Err()
	})
	callErr := make(chan error, 1)
	go func() {
		callErr <- h.conn.Invoke(context.Background(), "/"+testService+"/Do", &emptypb.Empty{}, &emptypb.Empty{})
	}()
	<-entered
	began := time.Now()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
		h.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Serve not bounded by the grace period")
	}
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Errorf("stopped after %v, before the grace period", d)
	}
	if err := <-callErr; err == nil {
		t.Error("call still succeeded after forced stop")
	}
	if !strings.Contains(h.logs.String(), "shutdown grace elapsed") {
		t.Error("forced stop not logged")
	}
}

func TestListenError(t *testing.T) {
	h := start(t, Options{}, nil)
	_, err := New(Options{GRPCListen: h.srv.GRPCAddr().String(), HTTPListen: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("want error for a used address")
	}
	_, err = New(Options{GRPCListen: "127.0.0.1:0", HTTPListen: h.srv.HTTPAddr().String()})
	if err == nil {
		t.Fatal("want error for a used HTTP address")
	}
}

func TestServeTwice(t *testing.T) {
	srv, err := New(Options{GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := srv.Serve(context.Background()); err == nil {
		t.Fatal("Serve after Close must fail")
	}
}

// TestDrainKeepsServingWhileNotServing: after the stop signal the health
// service says NOT_SERVING at once (so Envoy's health checks take the
// instance out of rotation), yet new calls are still served for the whole
// ShutdownDrain before the gRPC server stops accepting them.
func TestDrainKeepsServingWhileNotServing(t *testing.T) {
	const drain = 600 * time.Millisecond
	var calls atomic.Int32
	h := start(t, Options{ShutdownDrain: drain, ShutdownGrace: 2 * time.Second}, func(context.Context) error {
		calls.Add(1)
		return nil
	})
	waitFor(t, "serving", func() bool { return h.healthStatus(t, "") == healthpb.HealthCheckResponse_SERVING })
	began := time.Now()
	h.cancel() // SIGTERM
	waitFor(t, "NOT_SERVING", func() bool { return h.healthStatus(t, "") == healthpb.HealthCheckResponse_NOT_SERVING })
	if code, body := h.get(t, "/readyz"); code != 503 || !strings.Contains(body, `"draining"`) {
		t.Fatalf("/readyz during drain = %d %s", code, body)
	}
	// New calls keep succeeding during the drain period.
	for time.Since(began) < drain-200*time.Millisecond {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := h.conn.Invoke(ctx, "/"+testService+"/Do", &emptypb.Empty{}, &emptypb.Empty{})
		cancel()
		if err != nil {
			t.Fatalf("call %v after SIGTERM (drain %v) failed: %v", time.Since(began), drain, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
		h.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if d := time.Since(began); d < drain {
		t.Errorf("stopped after %v, before the drain period %v", d, drain)
	}
	if calls.Load() < 3 {
		t.Errorf("only %d calls served during the drain", calls.Load())
	}
	if !strings.Contains(h.logs.String(), `"msg":"draining"`) {
		t.Error("drain not logged")
	}
}

// TestPprofOptIn: profiling endpoints exist only on their own listener, and
// only when PprofListen is set; the metrics listener never serves them.
func TestPprofOptIn(t *testing.T) {
	off := start(t, Options{}, nil)
	if off.srv.PprofAddr() != nil {
		t.Fatalf("PprofAddr = %v without PprofListen", off.srv.PprofAddr())
	}
	if code, _ := off.get(t, "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("metrics listener /debug/pprof/ = %d, want 404", code)
	}

	on := start(t, Options{PprofListen: "127.0.0.1:0"}, nil)
	if code, _ := on.get(t, "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("metrics listener /debug/pprof/ = %d with pprof on, want 404", code)
	}
	addr := on.srv.PprofAddr()
	if addr == nil {
		t.Fatal("PprofAddr = nil with PprofListen set")
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatalf("pprof: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine profile:") {
		t.Fatalf("pprof goroutine = %d %.200s", resp.StatusCode, b)
	}
}
