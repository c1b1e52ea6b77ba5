// Package server owns tenantgate's listeners: the gRPC server that carries
// ext_authz, ext_proc and grpc.health.v1 (with RPC metrics, panic recovery
// and an Envoy-friendly keepalive policy), the HTTP server with /healthz,
// /readyz and /metrics, readiness tracking, and graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// Check is one readiness check. Fn returns nil when the dependency works.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configures a Server.
type Options struct {
	// GRPCNetwork is "tcp" (default) or "unix"; GRPCListen is a host:port
	// or, for "unix", a socket path.
	GRPCNetwork string
	GRPCListen  string // e.g. "127.0.0.1:9191"
	// GRPCSocketMode is the permission of a unix socket (default 0600).
	GRPCSocketMode os.FileMode
	// GRPCTLS, when set, is the listener's TLS configuration (see
	// MutualTLS.Config); nil serves plaintext gRPC.
	GRPCTLS    *tls.Config
	HTTPListen string // e.g. "127.0.0.1:9192"
	// PprofListen, when set, serves net/http/pprof on a listener of its own
	// (config validation keeps it on loopback); empty serves no profiles.
	PprofListen string
	// ShutdownGrace bounds the gRPC drain; calls still running after it are
	// cancelled (default 20s).
	ShutdownGrace time.Duration
	// ShutdownDrain is how long, after the stop signal, the server keeps
	// serving every call (new ones too) while gRPC health and /readyz
	// already report NOT_SERVING, so that Envoy's health checks take the
	// instance out of rotation before it stops accepting calls. Zero skips
	// the drain period.
	ShutdownDrain time.Duration
	// Checks gate /readyz and the gRPC health status.
	Checks []Check
	// CheckTimeout bounds one run of each check (default 2s).
	CheckTimeout time.Duration
	// ReadyInterval is how often the checks run to update the gRPC health
	// status (default 5s).
	ReadyInterval time.Duration
	// MaxRecvMsgSize is the largest gRPC message accepted (default 4 MiB);
	// buffered ext_proc bodies need it above the body limit.
	MaxRecvMsgSize int
	Logger         *slog.Logger
	// Registry serves /metrics; the server's collectors are registered on it.
	// Default: a new registry.
	Registry *prometheus.Registry
}

// Server owns both listeners. Build it with New, register services on
// GRPC(), then call Serve.
type Server struct {
	opts   Options
	log    *slog.Logger
	reg    *prometheus.Registry
	grpc   *grpc.Server
	health *health.Server
	http   *http.Server
	pprof  *http.Server // nil unless Options.PprofListen

	grpcLis  net.Listener
	httpLis  net.Listener
	pprofLis net.Listener

	draining atomic.Bool
	ready    atomic.Bool

	rpcs   *prometheus.CounterVec
	panics prometheus.Counter

	serveOnce sync.Once
}

// New binds both listeners and builds the servers. The caller must call
// Serve (or Close) to release them.
func New(opts Options) (*Server, error) {
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 20 * time.Second
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 2 * time.Second
	}
	if opts.ReadyInterval <= 0 {
		opts.ReadyInterval = 5 * time.Second
	}
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = 4 << 20
	}
	s := &Server{opts: opts, log: opts.Logger, reg: opts.Registry}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.rpcs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_grpc_requests_total",
		Help: "gRPC calls handled, by full method and status code.",
	}, []string{"method", "code"})
	s.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tenantgate_grpc_panics_total",
		Help: "gRPC handler panics recovered into codes.Internal.",
	})
	for _, c := range []prometheus.Collector{s.rpcs, s.panics} {
		if err := s.reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}

	grpcOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		// Envoy keeps connections open and may ping them; permit that so it
		// is never sent GOAWAY too_many_pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		// Stop (after shutdown_grace) returns only once every handler has
		// returned, so that what they hand on (usage records) is flushed
		// after them.
		grpc.WaitForHandlers(true),
	}
	if opts.GRPCTLS != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(opts.GRPCTLS)))
	}
	s.grpc = grpc.NewServer(grpcOpts...)
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}

	var err error
	if s.grpcLis, err = listenGRPC(opts); err != nil {
		return nil, fmt.Errorf("server: grpc listen %s: %w", opts.GRPCListen, err)
	}
	if s.httpLis, err = net.Listen("tcp", opts.HTTPListen); err != nil {
		s.grpcLis.Close()
		return nil, fmt.Errorf("server: http listen %s: %w", opts.HTTPListen, err)
	}
	if opts.PprofListen != "" {
		if s.pprofLis, err = net.Listen("tcp", opts.PprofListen); err != nil {
			s.grpcLis.Close()
			s.httpLis.Close()
			return nil, fmt.Errorf("server: pprof listen %s: %w", opts.PprofListen, err)
		}
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// A CPU profile or trace runs for its ?seconds=; no write timeout.
		s.pprof = &http.Server{Handler: pm, ReadHeaderTimeout: 5 * time.Second}
	}
	return s, nil
}

func listenGRPC(opts Options) (net.Listener, error) {
	switch opts.GRPCNetwork {
	case "", "tcp":
		return net.Listen("tcp", opts.GRPCListen)
	case "unix":
		mode := opts.GRPCSocketMode
		if mode == 0 {
			mode = 0o600
		}
		return listenUnix(opts.GRPCListen, mode)
	default:
		return nil, fmt.Errorf("unknown network %q", opts.GRPCNetwork)
	}
}

// GRPC returns the gRPC server for registering services before Serve.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// PprofAddr is the bound pprof address, nil when profiling is off.
func (s *Server) PprofAddr() net.Addr {
	if s.pprofLis == nil {
		return nil
	}
	return s.pprofLis.Addr()
}

// Close releases the listeners of a Server that was never served.
func (s *Server) Close() {
	s.serveOnce.Do(func() {
		s.grpcLis.Close()
		s.httpLis.Close()
		if s.pprofLis != nil {
			s.pprofLis.Close()
		}
	})
}

// Serve serves both listeners until ctx ends or a listener fails, then
// shuts down gracefully: readiness and gRPC health turn NOT_SERVING, every
// call (new ones too) is still served for ShutdownDrain, then gRPC stops
// accepting calls and those in flight get ShutdownGrace to finish before
// they are cancelled, and the HTTP server stops last. It returns nil after a shutdown caused by
// ctx, or the listener error.
func (s *Server) Serve(ctx context.Context) error {
	started := false
	s.serveOnce.Do(func() { started = true })
	if !started {
		return errors.New("server: Serve called twice or after Close")
	}
	errc := make(chan error, 2)
	go func() {
		if err := s.grpc.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("server: grpc: %w", err)
		}
	}()
	go func() {
		if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("server: http: %w", err)
		}
	}()
	if s.pprof != nil {
		s.log.Warn("pprof profiling endpoints enabled", slog.String("addr", s.pprofLis.Addr().String()))
		go func() { _ = s.pprof.Serve(s.pprofLis) }()
		defer s.pprof.Close()
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		s.pollReadiness(pollCtx)
	}()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		s.log.Error("listener failed; shutting down", slog.String("error", serveErr.Error()))
	}
	stopPoll()
	<-polled
	s.shutdown()
	return serveErr
}

// shutdown reports NOT_SERVING, keeps serving for ShutdownDrain, drains
// gRPC (bounded by ShutdownGrace) and then stops HTTP.
func (s *Server) shutdown() {
	s.draining.Store(true)
	s.ready.Store(false)
	s.health.Shutdown() // every service NOT_SERVING; later updates ignored
	s.log.Info("draining", slog.Duration("drain", s.opts.ShutdownDrain), slog.Duration("grace", s.opts.ShutdownGrace))
	if s.opts.ShutdownDrain > 0 {
		// Keep serving while the load balancer's health checks notice
		// NOT_SERVING and send new calls to the other instances.
		time.Sleep(s.opts.ShutdownDrain)
		s.log.Info("drain period over; stopping gRPC")
	}

	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(s.opts.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
		s.log.Info("grpc drained")
	case <-t.C:
		s.log.Warn("shutdown grace elapsed; cancelling remaining gRPC calls")
		s.grpc.Stop()
		<-done
	}

	hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(hctx); err != nil {
		s.log.Warn("http shutdown", slog.String("error", err.Error()))
		_ = s.http.Close()
	}
}

// pollReadiness runs the checks every ReadyInterval and mirrors the result
// into the gRPC health service.
func (s *Server) pollReadiness(ctx context.Context) {
	t := time.NewTicker(s.opts.ReadyInterval)
	defer t.Stop()
	for {
		failed := s.runChecks(ctx)
		s.setReady(len(failed) == 0 && ctx.Err() == nil)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) setReady(ok bool) {
	if s.draining.Load() {
		return
	}
	was := s.ready.Swap(ok)
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
	if was != ok {
		s.log.Info("readiness changed", slog.Bool("ready", ok))
	}
}

// runChecks runs every check concurrently and returns the failures by name.
func (s *Server) runChecks(ctx context.Context) map[string]string {
	var (
		mu     sync.Mutex
		failed = map[string]string{}
		wg     sync.WaitGroup
	)
	for _, c := range s.opts.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
			defer cancel()
			err := safeCheck(cctx, c.Fn)
			if err == nil {
				return
			}
			// Dependency errors may echo their inputs; log them at debug and
			// answer with the check name and a generic reason only.
			s.log.Debug("readiness check failed", slog.String("check", c.Name), slog.String("error", err.Error()))
			reason := "failed"
			if errors.Is(err, context.DeadlineExceeded) {
				reason = "timeout"
			}
			mu.Lock()
			failed[c.Name] = reason
			mu.Unlock()
		}()
	}
	wg.Wait()
	return failed
}

func safeCheck(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	return fn(ctx)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

type readyResponse struct {
	Status  string            `json:"status"`
	Failed  []string          `json:"failed,omitempty"`
	Reasons map[string]string `json:"reasons,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, readyResponse{Status: "draining"})
		return
	}
	reasons := s.runChecks(r.Context())
	if len(reasons) > 0 {
		failed := make([]string, 0, len(reasons))
		for name := range reasons {
			failed = append(failed, name)
		}
		sort.Strings(failed)
		writeJSON(w, http.StatusServiceUnavailable, readyResponse{Status: "not_ready", Failed: failed, Reasons: reasons})
		return
	}
	writeJSON(w, http.StatusOK, readyResponse{Status: "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
