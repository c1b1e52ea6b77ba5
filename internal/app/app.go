// Package app owns the assembly of a running tenantgate: it builds every
// component from the configuration (store, JWT verifier, API key
// authenticator, ext_authz, STS credential cache, ext_proc), hands them to
// the server, and tears them down in order on shutdown.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tenantgate/tenantgate/extproc"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/server"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/usage"
)

// Options are the process-level dependencies of an App.
type Options struct {
	// Logger receives every component's logs (default: discard).
	Logger *slog.Logger
	// Getenv resolves environment references outside the config schema
	// (service.api_keys_env). Default: no environment.
	Getenv func(string) string
	// AWSConfig, when set, replaces config.LoadDefaultConfig (the SDK
	// default credential chain and endpoint resolution).
	AWSConfig *aws.Config
	// HTTPClient fetches JWKS (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// ReadyInterval is how often readiness is re-evaluated for gRPC health
	// (default 5s).
	ReadyInterval time.Duration
	// Registry receives every component's collectors and is served on
	// /metrics. Default: a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Source is where Reload re-reads the configuration (the --config
	// file); without a Path, Reload refuses and nothing is polled.
	Source ConfigSource
	// Reloads, when set, asks Run for a Reload on every receive (SIGHUP in
	// the binary).
	Reloads <-chan struct{}
}

// App is a built tenantgate, listening but not yet serving until Run.
type App struct {
	cfg    *config.Config // as started; the reloadable sections are live's
	parsed *config.Config // as given to New, for telling what a reload changed
	log    *slog.Logger
	srv    *server.Server
	store  store.Store
	keys   *apikey.Authenticator
	creds  *awscreds.Cache
	region string
	// usage writes usage records (nil when metering is off); closers
	// release its sink after the final flush.
	usage   *usage.Recorder
	closers []func()

	// What Reload needs to rebuild the reloadable part.
	reg        prometheus.Registerer
	httpClient *http.Client
	getenv     func(string) string
	source     ConfigSource
	reloads    <-chan struct{}
	rm         *reloadMetrics
	live       atomic.Pointer[generation]
	reloadMu   sync.Mutex // serializes reloads
	lastFailed string     // hash of the last file content refused

	bgCtx  context.Context
	stopBg context.CancelFunc
	bg     sync.WaitGroup

	closeOnce sync.Once
}

// StoreKind names the store a configuration selects, without secrets:
// postgres, tenants-file or demo (config.Store.Kind), or "none" when it
// selects none (New refuses such a configuration).
func StoreKind(cfg config.Store) string {
	kind, err := cfg.Kind()
	if err != nil {
		return "none"
	}
	return kind
}

// New builds every component from cfg and binds both listeners. Call Run
// to serve, or Close to release everything without serving. cfg must have
// been produced by config.Load/Parse (defaults applied, validated).
func New(ctx context.Context, cfg *config.Config, opts Options) (_ *App, err error) {
	if cfg == nil {
		return nil, errors.New("app: nil config")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	c := *cfg // components get a copy; the demo default below must not leak back
	parsed := *cfg
	a := &App{cfg: &c, parsed: &parsed, log: log, region: c.ExtProc.DefaultRegion}

	// Background work (JWKS refresh, tenants-file reload, LISTEN, API key
	// batching, warm-up) lives until every in-flight call has drained.
	a.bgCtx, a.stopBg = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			a.release()
		}
	}()

	kind, err := c.Store.Kind()
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if kind == config.StoreDemo && c.Auth.APIKeys.Enabled == nil && c.Auth.APIKeys.Secret == "" {
		// The embedded tenants are public demo data; accept their demo key
		// so that `tenantgate serve --demo` without a config answers something.
		c.Auth.APIKeys.Secret = filestore.DemoAPIKeyHMACSecret
		log.Warn("--demo: serving the embedded DEMO tenants and accepting their public demo API key")
	}

	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}

	// The tenants-file watcher lives as long as the App, not the caller's ctx.
	a.store, err = store.Open(a.bgCtx, c.Store, log.With("component", "store"), reg)
	if err != nil {
		return nil, fmt.Errorf("app: open %s store: %w", kind, err)
	}

	if c.Auth.APIKeys.On() {
		a.keys = apikey.NewAuthenticator(a.store, c.Auth.APIKeys.Secret, apikey.Options{
			Logger:        log.With("component", "apikey"),
			Registerer:    reg,
			TouchInterval: c.Auth.APIKeys.TouchInterval.D(),
		})
	}
	// The reloadable part (JWT verifier, ext_authz, plans) is one
	// generation, swapped whole by Reload.
	a.reg, a.httpClient, a.getenv, a.source, a.reloads = reg, httpClient, getenv, opts.Source, opts.Reloads
	if a.rm, err = newReloadMetrics(reg); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	var hash string
	if opts.Source.Path != "" {
		if data, rerr := os.ReadFile(opts.Source.Path); rerr == nil {
			hash = hashOf(data)
		}
	}
	first, err := a.buildGeneration(&c, hash, nil)
	if err != nil {
		return nil, err
	}
	a.live.Store(first)
	a.rm.setLoaded(hash)

	var awsCfg aws.Config
	if opts.AWSConfig != nil {
		awsCfg = opts.AWSConfig.Copy()
	} else {
		awsCfg, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(c.ExtProc.DefaultRegion))
		if err != nil {
			return nil, fmt.Errorf("app: load AWS configuration: %w", err)
		}
	}
	if awsCfg.Region == "" {
		awsCfg.Region = c.ExtProc.DefaultRegion
	}
	if awsCfg.Credentials == nil {
		return nil, errors.New("app: no AWS credentials provider for the platform")
	}
	a.creds = awscreds.New(awscreds.Options{
		Config:       c.ExtProc.AssumeRole,
		STSForRegion: awscreds.STSClients(awsCfg),
		Logger:       log.With("component", "awscreds"),
		Registerer:   reg,
	})
	// ext_proc learns the tier from ext_authz's metadata and asks the same
	// plans (those in force) which x-amzn-bedrock-* headers that tier may
	// send, and whether it may use a model named in the body
	// (StartAsyncInvoke).
	plans := planFront{a}
	var observer extproc.StreamObserver
	if c.Usage.On() {
		a.usage, err = a.buildUsage(ctx, &c, kind, reg)
		if err != nil {
			return nil, err
		}
		observer = &usage.Observer{Sink: a.usage, Logger: log.With("component", "usage")}
	}
	proc, err := extproc.New(extproc.Options{
		Config:       c.ExtProc,
		StripHeaders: extraStrip(&c),
		Platform:     awsCfg.Credentials,
		// Per-tenant sessions of extproc.platform_role_arn share the
		// tenant credential cache.
		PlatformSessions: a.creds,
		Logger:           log.With("component", "extproc"),
		Registerer:       reg,
		BedrockHeaders:   plans,
		Models:           plans,
		Observer:         observer,
	}, a.store, a.creds)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}

	grpcNet, grpcAddr := "tcp", c.Server.GRPCListen
	if path, ok := config.IsUnixListen(grpcAddr); ok {
		grpcNet, grpcAddr = "unix", path
	}
	socketMode, err := config.ParseSocketMode(c.Server.GRPCSocketMode)
	if err != nil {
		return nil, fmt.Errorf("app: server.grpc_socket_mode: %w", err)
	}
	var grpcTLS *tls.Config
	if t := c.Server.GRPCTLS; t.Enabled() {
		grpcTLS, err = server.MutualTLS{
			CertFile:          t.CertFile,
			KeyFile:           t.KeyFile,
			ClientCAFile:      t.ClientCAFile,
			AllowedClientSANs: t.AllowedClientSANs,
			MinVersion:        t.TLSMinVersion(),
		}.Config()
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
	}
	a.srv, err = server.New(server.Options{
		GRPCNetwork:    grpcNet,
		GRPCListen:     grpcAddr,
		GRPCSocketMode: socketMode,
		GRPCTLS:        grpcTLS,
		HTTPListen:     c.Server.HTTPListen,
		PprofListen:    c.Server.PprofListen,
		ShutdownGrace:  c.Server.ShutdownGrace.D(),
		ShutdownDrain:  c.Server.Drain(),
		ReadyInterval:  opts.ReadyInterval,
		MaxRecvMsgSize: maxRecvMsgSize(c.ExtProc.MaxBodyBytes),
		Checks: []server.Check{
			{Name: "store", Fn: a.store.Ping},
			{Name: "jwt_verifier", Fn: a.verifierReady},
		},
		Logger:   log.With("component", "server"),
		Registry: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	authv3.RegisterAuthorizationServer(a.srv.GRPC(), authzFront{a: a})
	proc.Register(a.srv.GRPC())
	a.warnUnlistedTiers(ctx)
	return a, nil
}

// maxRecvMsgSize leaves room above the body limit for the rest of an
// ext_proc message carrying a buffered body.
func maxRecvMsgSize(maxBody int64) int {
	const floor, overhead = 4 << 20, 1 << 20
	n := maxBody + overhead
	if n < floor {
		return floor
	}
	if n > 1<<30 {
		return 1 << 30
	}
	return int(n)
}

// extraStrip lists credential headers ext_proc strips beyond its built-in list.
func extraStrip(cfg *config.Config) []string {
	var out []string
	for _, h := range []string{cfg.Auth.APIKeys.Header, cfg.Service.APIKeyHeader} {
		if h != "" {
			out = append(out, strings.ToLower(h))
		}
	}
	return out
}

// GRPCAddr is the bound ext_authz/ext_proc/health address.
func (a *App) GRPCAddr() net.Addr { return a.srv.GRPCAddr() }

// HTTPAddr is the bound /healthz, /readyz, /metrics address.
func (a *App) HTTPAddr() net.Addr { return a.srv.HTTPAddr() }

// Run serves until ctx ends (SIGTERM/SIGINT in the binary), then drains
// gRPC within server.shutdown_grace, stops HTTP, flushes pending API key
// last_used_at updates and closes the store.
func (a *App) Run(ctx context.Context) error {
	if a.keys != nil {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			a.keys.Run(a.bgCtx)
		}()
	}
	if a.usage != nil {
		// Records are written off the request path until every ext_proc
		// stream has drained; then what is queued is flushed.
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			_ = a.usage.Run(a.bgCtx)
		}()
	}
	if a.cfg.ExtProc.AssumeRole.WarmOnStart {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			a.warm(a.bgCtx)
		}()
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.watch(a.bgCtx, a.reloads, a.cfg.Server.Poll())
	}()
	a.logStart()
	err := a.srv.Serve(ctx)
	a.release()
	a.log.Info("tenantgate stopped")
	return err
}

func (a *App) warm(ctx context.Context) {
	routes, err := a.store.Routes(ctx)
	if err != nil {
		a.log.Warn("warm tenant credentials: list routes failed", slog.String("error", err.Error()))
		return
	}
	// Sessions are tagged with the account's tier: warm the session its
	// requests will use (a failed plan lookup warms with no tier).
	for i := range routes {
		if p, err := a.store.Plan(ctx, routes[i].AccountID); err == nil {
			routes[i].Tier = p.Tier
		}
	}
	a.creds.Warm(ctx, routes, a.region)
	a.log.Info("warmed tenant credentials", slog.Int("routes", len(routes)))
}

func (a *App) logStart() {
	c := a.cfg
	issuers := make([]string, 0, len(c.Auth.Issuers))
	for _, is := range c.Auth.Issuers {
		issuers = append(issuers, is.Issuer)
	}
	a.log.Info("tenantgate serving",
		slog.String("grpc", a.GRPCAddr().String()),
		slog.Bool("grpc_mtls", c.Server.GRPCTLS.Enabled()),
		slog.String("http", a.HTTPAddr().String()),
		slog.String("store", StoreKind(c.Store)),
		slog.Any("issuers", issuers),
		slog.Bool("api_keys", c.Auth.APIKeys.On()),
		slog.Bool("query_token", c.Auth.QueryToken.Enabled),
		slog.String("default_region", c.ExtProc.DefaultRegion),
		slog.String("endpoint_template", c.ExtProc.EndpointTemplate),
		slog.String("tenant_source", c.ExtProc.TenantSource),
		slog.Bool("warm_on_start", c.ExtProc.AssumeRole.WarmOnStart))
}

// Close releases an App that was never Run.
func (a *App) Close() {
	if a.srv != nil {
		a.srv.Close()
	}
	a.release()
}

// release stops background work (the API key batcher flushes once more)
// and closes the store.
func (a *App) release() {
	a.closeOnce.Do(func() {
		a.stopBg()
		a.bg.Wait()
		for _, c := range a.closers {
			c()
		}
		if a.store != nil {
			a.store.Close()
		}
	})
}
