// Package stack starts and stops the whole local tenantgate stack on free
// loopback ports: a test PKI, the fake AWS endpoints (STS over HTTP, the
// Bedrock runtime over HTTPS, their admin API) in-process, a JWKS issuer,
// the tenantgate binary with a generated configuration, and a real Envoy
// running the shipped envoy/envoy.yaml rewritten only in addresses, ports,
// TLS file paths and the token bucket of its listener rate limit
// (Options.EnvoyRateLimit). It backs the end-to-end tests and the demo.
package stack

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/fakeaws"
	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	"github.com/tenantgate/tenantgate/internal/fakeaws/fault"
)

// HS256Secret is the stack issuer's shared secret (test value).
const HS256Secret = "stack-hs256-secret-for-tests-only-0123456789"

// jwksKID is the key id of the stack issuer's RSA key.
const jwksKID = "stack-rsa-1"

// Options configure Start. The zero value runs the embedded demo tenants
// (tenantgate serve --demo).
type Options struct {
	// Dir holds configs, certificates, binaries and logs; empty means a new
	// temporary directory removed by Stop.
	Dir string
	// Logger receives the stack's own progress messages; nil discards.
	Logger *slog.Logger
	// EnvoyBin; empty means FindEnvoy.
	EnvoyBin string
	// TenantgateBin; empty means `go build ./cmd/tenantgate` into Dir
	// (or $TENANTGATE_BIN when set).
	TenantgateBin string
	// DatabaseURL selects the PostgreSQL store (already migrated and seeded).
	DatabaseURL string
	// TenantsFile selects a tenants file; with neither set tenantgate runs
	// with --demo (its embedded demo tenants).
	TenantsFile string
	// Models maps tiers to allowed model globs (plans.models); nil means
	// DemoModels. Tiers that are not listed are refused.
	Models map[string][]string
	// TrustedPrincipals are service.trusted_principals; nil means
	// [WorkerSPIFFEID].
	TrustedPrincipals []string
	// StreamDelay between streamed fake events; zero means 50ms.
	StreamDelay time.Duration
	// Geography is extproc.geography ("reject" or "rewrite"); empty keeps
	// tenantgate's default.
	Geography string
	// PlatformRoleARN is extproc.platform_role_arn; empty keeps platform
	// requests on the platform's base credentials. The fake STS trusts
	// fakeaws.PlatformInvokerRoleARN.
	PlatformRoleARN string
	// TenantgateLink is how Envoy reaches tenantgate: LinkMTLS (default, as
	// envoy/envoy.yaml ships: tenantgate requires Envoy's client
	// certificate), LinkUnix (a Unix socket in Dir) or LinkPlaintext.
	TenantgateLink Link
	// Replicas is the number of tenantgate processes behind Envoy's
	// tenantgate cluster (default 1), each with its own ports, config file
	// (tenantgate.yaml, tenantgate-1.yaml, ...) and log (tenantgate.log,
	// tenantgate-1.log, ...). More than one needs a TCP link.
	Replicas int
	// ShutdownDrain is tenantgate's server.shutdown_drain; zero means "0s"
	// (stop at once: most tests stop tenantgate to see Envoy fail closed).
	ShutdownDrain time.Duration
	// Usage is tenantgate's usage section (metering); nil keeps its
	// defaults.
	Usage map[string]any
	// EnvoyDropFilters are HTTP filters removed from the shipped bootstrap
	// (e.g. "envoy.filters.http.ext_proc.usage" to compare metering off).
	EnvoyDropFilters []string
	// EnvoyRateLimit replaces the token bucket of Envoy's listener rate
	// limit; nil means a million requests per second, so that tests,
	// benchmarks and the demo are never throttled by the shipped
	// per-instance limit. Tests of the limit set a small bucket.
	EnvoyRateLimit *TokenBucket
	// Configure, when set, may change the generated tenantgate
	// configuration (the YAML document as nested maps) before it is
	// written: fault tests shorten TTLs and timeouts with it.
	Configure func(cfg map[string]any)
	// ConfigureFakes, when set, may change the fake AWS configuration
	// (extra roles, for instance) before the fakes start.
	ConfigureFakes func(cfg *fakeaws.Config)
	// TenantgateLogLevel is tenantgate's server.log_level; empty means
	// "debug" (tests read the decision lines). Benchmarks use "info", the
	// shipped default.
	TenantgateLogLevel string
	// TenantgatePprof, when set, is tenantgate's server.pprof_listen (a
	// loopback host:port serving net/http/pprof; replica 0 only).
	TenantgatePprof string
}

// Stack is a running local stack.
type Stack struct {
	// Dir holds every generated file and the logs.
	Dir string
	// Certs are the test PKI files.
	Certs Certs
	// EnvoyURL is Envoy's public TLS listener (https://127.0.0.1:port).
	EnvoyURL string
	// MeshURL is Envoy's mTLS listener for service callers.
	MeshURL string
	// EnvoyAdminURL is Envoy's admin interface.
	EnvoyAdminURL string
	// TenantgateGRPC and TenantgateHTTP are tenantgate's listen addresses
	// (of replica 0); with LinkUnix TenantgateGRPC is "unix:<socket path>".
	TenantgateGRPC, TenantgateHTTP string
	// Replicas are every tenantgate replica's addresses; Replicas[0] is
	// TenantgateGRPC/TenantgateHTTP.
	Replicas []Replica
	// TenantgateLink is the transport between Envoy and tenantgate.
	TenantgateLink Link
	// FakeAdminURL is the base URL of the fake AWS admin API (/_fake/...).
	FakeAdminURL string
	// STSURL is the fake STS endpoint (AWS_ENDPOINT_URL_STS).
	STSURL string
	// Issuer is the JWT issuer configured in tenantgate.
	Issuer string
	// Fakes are the in-process fake AWS services.
	Fakes *fakeaws.Fakes
	// JWKSFaults injects faults into the issuer's JWKS endpoint (latency,
	// 503, dropped connections), as Fakes do for STS and Bedrock.
	JWKSFaults *fault.Injector

	opts        Options
	log         *slog.Logger
	ownDir      bool
	keyMu       sync.Mutex
	rsaKey      *rsa.PrivateKey // signs Token
	rsaKID      string
	jwksKeys    []any // published JWKS keys, newest first
	servers     []*http.Server
	tgConfig    string         // replica 0's config file
	tgDoc       map[string]any // the config every replica shares but server
	tgBin       string
	envoyBin    string
	mu          sync.Mutex
	tenantgates []*proc // by replica; nil when stopped
	envoy       *proc
	fakeLog     *os.File
	bedrockAddr string
}

// Start brings the stack up and waits until tenantgate is ready and Envoy
// reports ready with a healthy tenantgate cluster. On error everything
// already started is stopped and the error carries the log tails.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	s := &Stack{opts: o, log: o.Logger, Dir: o.Dir, TenantgateLink: o.TenantgateLink}
	if s.TenantgateLink == "" {
		s.TenantgateLink = LinkMTLS
	}
	if s.opts.Replicas <= 0 {
		s.opts.Replicas = 1
	}
	if s.opts.Replicas > 1 && s.TenantgateLink == LinkUnix {
		return nil, errors.New("stack: several replicas need a TCP link (mtls or plaintext)")
	}
	s.tenantgates = make([]*proc, s.opts.Replicas)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "tenantgate-stack-")
		if err != nil {
			return nil, fmt.Errorf("stack: temp dir: %w", err)
		}
		s.Dir, s.ownDir = d, true
	}
	defer func() {
		if err != nil {
			tails := s.LogTails(4000)
			_ = s.Stop()
			err = fmt.Errorf("%w\n%s", err, tails)
		}
	}()
	if s.Certs, err = WriteCerts(s.Dir, envoy.Regions); err != nil {
		return nil, fmt.Errorf("stack: certs: %w", err)
	}
	if err := s.startFakes(); err != nil {
		return nil, err
	}
	if err := s.startIssuer(); err != nil {
		return nil, err
	}
	if s.tgBin, err = s.tenantgateBinary(ctx); err != nil {
		return nil, err
	}
	if s.envoyBin = o.EnvoyBin; s.envoyBin == "" {
		if s.envoyBin, err = FindEnvoy(ctx); err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
	}
	if err := s.writeTenantgateConfig(); err != nil {
		return nil, err
	}
	if err := s.StartTenantgate(ctx); err != nil {
		return nil, err
	}
	if err := s.startEnvoy(ctx); err != nil {
		return nil, err
	}
	s.log.Info("stack ready", "envoy", s.EnvoyURL, "mesh", s.MeshURL, "dir", s.Dir)
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Stack) serve(h http.Handler, tlsCfg *tls.Config) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("stack: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	s.servers = append(s.servers, srv)
	if tlsCfg != nil {
		srv.TLSConfig = tlsCfg
		go func() { _ = srv.ServeTLS(l, "", "") }()
		return "https://" + l.Addr().String(), nil
	}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

func (s *Stack) startFakes() error {
	f, err := os.Create(filepath.Join(s.Dir, "fakeaws.log"))
	if err != nil {
		return fmt.Errorf("stack: fakeaws log: %w", err)
	}
	s.fakeLog = f
	cfg := fakeaws.Default()
	cfg.Regions = envoy.Regions
	cfg.Platform = fakeaws.Platform{AccessKeyID: PlatformAccessKey, SecretAccessKey: PlatformSecretKey, PrincipalARN: PlatformPrincipal}
	cfg.DenyModels = []string{DeniedModel}
	if s.opts.StreamDelay > 0 {
		cfg.StreamDelay = s.opts.StreamDelay
	}
	if s.opts.ConfigureFakes != nil {
		s.opts.ConfigureFakes(&cfg)
	}
	fakes, err := fakeaws.New(cfg, slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	s.Fakes = fakes
	if s.STSURL, err = s.serve(fakes.STS, nil); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(s.Certs.BedrockCert, s.Certs.BedrockKey)
	if err != nil {
		return fmt.Errorf("stack: bedrock cert: %w", err)
	}
	bedrockURL, err := s.serve(fakes.Bedrock, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	s.bedrockAddr = strings.TrimPrefix(bedrockURL, "https://")
	if s.FakeAdminURL, err = s.serve(fakes.AdminHandler(), nil); err != nil {
		return err
	}
	return nil
}

func (s *Stack) startIssuer() error {
	if err := s.addIssuerKey(jwksKID); err != nil {
		return err
	}
	s.JWKSFaults = &fault.Injector{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/v1/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		switch s.JWKSFaults.Apply(r.Context()) {
		case fault.Drop:
			fault.DropConnection(w)
			return
		case fault.Unavailable:
			http.Error(w, "jwks unavailable (injected fault)", http.StatusServiceUnavailable)
			return
		}
		s.keyMu.Lock()
		jwks, err := json.Marshal(map[string]any{"keys": s.jwksKeys})
		s.keyMu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	base, err := s.serve(mux, nil)
	if err != nil {
		return err
	}
	s.Issuer = base + "/auth/v1"
	return nil
}

// addIssuerKey generates an RSA key with key id kid, publishes it first in
// the JWKS (keeping the earlier keys) and makes Token sign with it.
func (s *Stack) addIssuerKey(kid string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("stack: rsa key: %w", err)
	}
	jwk := map[string]any{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	s.rsaKey, s.rsaKID = key, kid
	s.jwksKeys = append([]any{jwk}, s.jwksKeys...)
	return nil
}

// RotateIssuerKey rotates the issuer's signing key as Supabase Auth does:
// a new key (id kid) is published first in the JWKS, beside the old ones,
// and Token signs with it from now on. It returns a function that still
// mints tokens with the previous key.
func (s *Stack) RotateIssuerKey(kid string) (previous func(userID string, ttl time.Duration) (string, error), err error) {
	s.keyMu.Lock()
	oldKey, oldKID := s.rsaKey, s.rsaKID
	s.keyMu.Unlock()
	if err := s.addIssuerKey(kid); err != nil {
		return nil, err
	}
	return func(userID string, ttl time.Duration) (string, error) {
		return s.signRS256(oldKey, oldKID, userID, ttl)
	}, nil
}

// Token mints an RS256 access token (served through the stack's JWKS) for
// userID, like Supabase Auth: iss, sub, aud authenticated, role
// authenticated, exp in ttl.
func (s *Stack) Token(userID string, ttl time.Duration) (string, error) {
	s.keyMu.Lock()
	key, kid := s.rsaKey, s.rsaKID
	s.keyMu.Unlock()
	return s.signRS256(key, kid, userID, ttl)
}

func (s *Stack) signRS256(key *rsa.PrivateKey, kid, userID string, ttl time.Duration) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, s.claims(userID, ttl))
	t.Header["kid"] = kid
	tok, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("stack: sign token: %w", err)
	}
	return tok, nil
}

// HS256Token mints a token signed with the legacy shared secret.
func (s *Stack) HS256Token(userID string, ttl time.Duration) (string, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, s.claims(userID, ttl)).SignedString([]byte(HS256Secret))
	if err != nil {
		return "", fmt.Errorf("stack: sign token: %w", err)
	}
	return tok, nil
}

func (s *Stack) claims(userID string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": s.Issuer, "sub": userID, "aud": "authenticated", "role": "authenticated",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "email": userID[:8] + "@example.test",
	}
}

func (s *Stack) tenantgateBinary(ctx context.Context) (string, error) {
	if s.opts.TenantgateBin != "" {
		return s.opts.TenantgateBin, nil
	}
	if p := os.Getenv("TENANTGATE_BIN"); p != "" {
		return p, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("stack: %w", err)
	}
	out := filepath.Join(s.Dir, "tenantgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/tenantgate")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("stack: go build ./cmd/tenantgate: %w\n%s", err, b)
	}
	return out, nil
}

func (s *Stack) writeTenantgateConfig() error {
	principals := s.opts.TrustedPrincipals
	if principals == nil {
		principals = []string{WorkerSPIFFEID}
	}
	store := map[string]any{"cache_ttl": "5s", "negative_cache_ttl": "2s"}
	if s.opts.DatabaseURL != "" {
		store["database_url"] = s.opts.DatabaseURL
	} else if s.opts.TenantsFile != "" {
		store["tenants_file"] = s.opts.TenantsFile
	}
	cfg := map[string]any{
		"store": store,
		"auth": map[string]any{
			"api_keys": map[string]any{"secret": APIKeySecret},
			"issuers": []any{map[string]any{
				"issuer": s.Issuer, "hs256_secret": HS256Secret, "hs256_secret_env": "-",
				"jwks": true, "jwks_url": s.Issuer + "/.well-known/jwks.json",
			}},
		},
		"service": map[string]any{"trusted_principals": principals},
		"extproc": map[string]any{"default_region": DefaultRegion},
	}
	if s.opts.Geography != "" {
		cfg["extproc"].(map[string]any)["geography"] = s.opts.Geography
	}
	if s.opts.PlatformRoleARN != "" {
		cfg["extproc"].(map[string]any)["platform_role_arn"] = s.opts.PlatformRoleARN
	}
	if s.opts.Usage != nil {
		cfg["usage"] = s.opts.Usage
	}
	models := s.opts.Models
	if models == nil {
		models = DemoModels()
	}
	cfg["plans"] = map[string]any{"models": models}
	if s.opts.Configure != nil {
		s.opts.Configure(cfg)
	}
	s.tgDoc = cfg
	s.Replicas = make([]Replica, s.opts.Replicas)
	for i := range s.Replicas {
		gp, err := freePort()
		if err != nil {
			return err
		}
		hp, err := freePort()
		if err != nil {
			return err
		}
		r := Replica{GRPC: fmt.Sprintf("127.0.0.1:%d", gp), HTTP: fmt.Sprintf("127.0.0.1:%d", hp)}
		if s.TenantgateLink == LinkUnix {
			r.GRPC = "unix:" + filepath.Join(s.Dir, "tenantgate.sock")
		}
		s.Replicas[i] = r
	}
	s.TenantgateGRPC, s.TenantgateHTTP = s.Replicas[0].GRPC, s.Replicas[0].HTTP
	s.tgConfig = s.replicaConfig(0)
	return s.writeReplicaConfigs()
}

// writeReplicaConfigs writes every replica's config file: tgDoc with the
// replica's own server section.
func (s *Stack) writeReplicaConfigs() error {
	for i, r := range s.Replicas {
		level := s.opts.TenantgateLogLevel
		if level == "" {
			level = "debug"
		}
		server := map[string]any{
			"grpc_listen": r.GRPC, "http_listen": r.HTTP, "log_level": level, "log_format": "json",
			"shutdown_grace": "2s", "shutdown_drain": s.opts.ShutdownDrain.String(),
		}
		if s.opts.TenantgatePprof != "" && i == 0 {
			// One address: only replica 0 serves profiles.
			server["pprof_listen"] = s.opts.TenantgatePprof
		}
		switch s.TenantgateLink {
		case LinkMTLS:
			server["grpc_tls"] = map[string]any{
				"cert_file": s.Certs.TenantgateCert, "key_file": s.Certs.TenantgateKey,
				"client_ca_file": s.Certs.LinkCA, "allowed_client_sans": []string{EnvoyLinkSAN},
			}
		case LinkUnix, LinkPlaintext:
		default:
			return fmt.Errorf("stack: unknown tenantgate link %q", s.TenantgateLink)
		}
		cfg := make(map[string]any, len(s.tgDoc)+1)
		for k, v := range s.tgDoc {
			cfg[k] = v
		}
		cfg["server"] = server
		b, err := yaml.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("stack: tenantgate config: %w", err)
		}
		// Write then rename, so that a reload never reads half a file.
		tmp := s.replicaConfig(i) + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return fmt.Errorf("stack: tenantgate config: %w", err)
		}
		if err := os.Rename(tmp, s.replicaConfig(i)); err != nil {
			return fmt.Errorf("stack: tenantgate config: %w", err)
		}
	}
	return nil
}

// StartTenantgate (re)starts every stopped tenantgate replica and waits
// for /readyz and gRPC SERVING.
func (s *Stack) StartTenantgate(ctx context.Context) error {
	for i := range s.Replicas {
		if err := s.StartReplica(ctx, i); err != nil && !errors.Is(err, errReplicaRunning) {
			return err
		}
	}
	return nil
}

var errReplicaRunning = errors.New("stack: tenantgate replica already running")

// StartReplica (re)starts tenantgate replica i and waits for its /readyz and
// gRPC SERVING (not for Envoy's health checks: see WaitReplicaHealthy).
func (s *Stack) StartReplica(ctx context.Context, i int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.Replicas) {
		return fmt.Errorf("stack: no tenantgate replica %d", i)
	}
	if s.tenantgates[i] != nil {
		return fmt.Errorf("%w: %d", errReplicaRunning, i)
	}
	r := s.Replicas[i]
	env := cleanEnv()
	env = append(env,
		"AWS_ENDPOINT_URL_STS="+s.STSURL,
		"AWS_ACCESS_KEY_ID="+PlatformAccessKey,
		"AWS_SECRET_ACCESS_KEY="+PlatformSecretKey,
		"AWS_REGION="+DefaultRegion,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(s.Dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(s.Dir, "no-aws-credentials"),
	)
	args := []string{"serve", "--config", s.replicaConfig(i)}
	if s.opts.DatabaseURL == "" && s.opts.TenantsFile == "" {
		// tenantgate serves its embedded demo tenants only when asked to.
		args = append(args, "--demo")
	}
	p, err := startProc(s.Dir, replicaName(i), env, s.tgBin, args...)
	if err != nil {
		return err
	}
	s.tenantgates[i] = p
	if err := waitHTTP(ctx, p, "http://"+r.HTTP+"/readyz", 60*time.Second); err != nil {
		return fmt.Errorf("stack: tenantgate not ready: %w", err)
	}
	// Envoy health-checks tenantgate over grpc.health.v1: wait until that
	// says SERVING too, so Envoy's first check passes.
	creds, err := s.TenantgateCreds(s.Certs.EnvoyClientCert, s.Certs.EnvoyClientKey)
	if err != nil {
		return err
	}
	if err := waitGRPCServing(ctx, p, r.GRPC, creds, 60*time.Second); err != nil {
		return fmt.Errorf("stack: tenantgate not serving: %w", err)
	}
	return nil
}

// TenantgateCreds returns the transport credentials for dialing
// TenantgateGRPC directly: with LinkMTLS, TLS trusting the link CA for
// TenantgateServerName and presenting certFile (none when empty; Envoy's is
// Certs.EnvoyClientCert); otherwise plaintext.
func (s *Stack) TenantgateCreds(certFile, keyFile string) (credentials.TransportCredentials, error) {
	if s.TenantgateLink != LinkMTLS {
		return insecure.NewCredentials(), nil
	}
	caPEM, err := os.ReadFile(s.Certs.LinkCA)
	if err != nil {
		return nil, fmt.Errorf("stack: read link CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: TenantgateServerName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("stack: tenantgate client cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return credentials.NewTLS(cfg), nil
}

func waitGRPCServing(ctx context.Context, p *proc, addr string, creds credentials.TransportCredentials, timeout time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("grpc client: %w", err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %v", p.name, p.waitErr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: grpc health not SERVING within %v (last: %v %v)", p.name, timeout, resp.GetStatus(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TenantgatePID is the process id of the running tenantgate (replica 0),
// 0 when it is not running.
func (s *Stack) TenantgatePID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tenantgates) == 0 || s.tenantgates[0] == nil || s.tenantgates[0].cmd.Process == nil {
		return 0
	}
	return s.tenantgates[0].cmd.Process.Pid
}

// StopTenantgate stops every tenantgate replica (Envoy keeps running:
// requests must fail closed).
func (s *Stack) StopTenantgate() error {
	var errs []error
	for i := range s.Replicas {
		errs = append(errs, s.StopReplica(i))
	}
	return errors.Join(errs...)
}

// cleanEnv is the parent environment without AWS_* settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "TENANTGATE_DATABASE_URL=") ||
			strings.HasPrefix(kv, "API_KEY_SECRET=") || strings.HasPrefix(kv, "SUPABASE_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (s *Stack) startEnvoy(ctx context.Context) error {
	var ports EnvoyPorts
	for _, p := range []*int{&ports.Admin, &ports.Public, &ports.Mesh} {
		n, err := freePort()
		if err != nil {
			return err
		}
		*p = n
	}
	var err error
	ports.TenantgateLink = s.TenantgateLink
	if path, ok := strings.CutPrefix(s.TenantgateGRPC, "unix:"); ok {
		ports.TenantgateSocket = path
	} else if ports.Tenantgate, err = portOf(s.TenantgateGRPC); err != nil {
		return err
	}
	for _, r := range s.Replicas[1:] {
		p, err := portOf(r.GRPC)
		if err != nil {
			return err
		}
		ports.MoreTenantgates = append(ports.MoreTenantgates, p)
	}
	ports.TenantgateClientCert, ports.TenantgateClientKey = s.Certs.EnvoyClientCert, s.Certs.EnvoyClientKey
	ports.TenantgateCA = s.Certs.LinkCA
	if ports.Bedrock, err = portOf(s.bedrockAddr); err != nil {
		return err
	}
	ports.ServerCert, ports.ServerKey = s.Certs.EnvoyCert, s.Certs.EnvoyKey
	ports.MeshCA, ports.UpstreamCA = s.Certs.CA, s.Certs.CA
	ports.RateLimit = s.opts.EnvoyRateLimit
	ports.DropFilters = s.opts.EnvoyDropFilters
	if ports.RateLimit == nil {
		ports.RateLimit = &TokenBucket{MaxTokens: 1_000_000, TokensPerFill: 1_000_000, FillInterval: time.Second}
	}
	b, err := RewriteBootstrap(envoy.Bootstrap, ports)
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	cfgPath := filepath.Join(s.Dir, "envoy.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return fmt.Errorf("stack: envoy config: %w", err)
	}
	p, err := startProc(s.Dir, "envoy", os.Environ(), s.envoyBin, "-c", cfgPath, "--disable-hot-restart",
		"--concurrency", "2", "-l", "info", "--component-log-level", "hc:debug", "--drain-time-s", "1")
	if err != nil {
		return err
	}
	s.envoy = p
	s.EnvoyAdminURL = fmt.Sprintf("http://127.0.0.1:%d", ports.Admin)
	s.EnvoyURL = fmt.Sprintf("https://127.0.0.1:%d", ports.Public)
	s.MeshURL = fmt.Sprintf("https://127.0.0.1:%d", ports.Mesh)
	if err := waitHTTP(ctx, p, s.EnvoyAdminURL+"/ready", 60*time.Second); err != nil {
		return fmt.Errorf("stack: envoy not ready: %w", err)
	}
	// The tenantgate cluster is health checked: wait for the first pass
	// of every replica.
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := HTTPGet(ctx, s.EnvoyAdminURL+"/clusters")
		if err == nil && s.allHealthy(body) {
			return nil
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "tenantgate::") && !strings.HasSuffix(l, "::0") {
					lines = append(lines, l)
				}
			}
			return fmt.Errorf("stack: envoy never saw every tenantgate replica healthy:\n%s", strings.Join(lines, "\n"))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func portOf(hostport string) (int, error) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, fmt.Errorf("stack: address %q: %w", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("stack: port of %q: %w", hostport, err)
	}
	return n, nil
}

// TenantgateHealthy reports whether Envoy currently considers every
// tenantgate replica healthy.
func (s *Stack) TenantgateHealthy(ctx context.Context) bool {
	body, err := HTTPGet(ctx, s.EnvoyAdminURL+"/clusters")
	return err == nil && s.allHealthy(body)
}

func (s *Stack) allHealthy(clusters string) bool {
	for _, r := range s.Replicas {
		if !strings.Contains(clusters, healthyLine(r)) {
			return false
		}
	}
	return true
}

// healthyLine is the admin /clusters line of a healthy tenantgate endpoint.
func healthyLine(r Replica) string {
	return fmt.Sprintf("tenantgate::%s::health_flags::healthy", strings.TrimPrefix(r.GRPC, "unix:"))
}

// HTTPGet fetches url and returns its body; a status other than 200 is an
// error (the body is returned with it).
func HTTPGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := HTTPGet(ctx, url); err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %v", p.name, p.waitErr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no 200 from %s within %v", p.name, url, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop shuts everything down and removes a temporary Dir.
func (s *Stack) Stop() error {
	var errs []error
	s.mu.Lock()
	procs := []**proc{&s.envoy}
	for i := range s.tenantgates {
		procs = append(procs, &s.tenantgates[i])
	}
	for _, p := range procs {
		if *p != nil {
			if err := (*p).stop(); err != nil {
				errs = append(errs, err)
			}
			*p = nil
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	}
	s.servers = nil
	if s.fakeLog != nil {
		_ = s.fakeLog.Close()
		s.fakeLog = nil
	}
	if s.ownDir && os.Getenv("TENANTGATE_KEEP_STACK") == "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("stack: remove dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// LogTails returns the last max bytes of every log file, for failure output.
func (s *Stack) LogTails(max int64) string {
	var b strings.Builder
	names := []string{"envoy.log", "fakeaws.log"}
	for i := len(s.Replicas) - 1; i >= 0; i-- {
		names = append([]string{replicaName(i) + ".log"}, names...)
	}
	if len(s.Replicas) == 0 {
		names = append([]string{"tenantgate.log"}, names...)
	}
	for _, name := range names {
		f, err := os.Open(filepath.Join(s.Dir, name))
		if err != nil {
			continue
		}
		st, _ := f.Stat()
		if st != nil && st.Size() > max {
			_, _ = f.Seek(st.Size()-max, io.SeekStart)
		}
		data, _ := io.ReadAll(f)
		f.Close()
		fmt.Fprintf(&b, "----- %s (last %d bytes) -----\n%s\n", name, max, data)
	}
	return b.String()
}

// ClientTLS returns a TLS config trusting the stack CA, presenting the
// given client certificate when certFile is not empty.
func (s *Stack) ClientTLS(certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(s.Certs.CA)
	if err != nil {
		return nil, fmt.Errorf("stack: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("stack: client cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// HTTPClient returns an HTTP client for Envoy's listeners (see ClientTLS).
func (s *Stack) HTTPClient(certFile, keyFile string) (*http.Client, error) {
	cfg, err := s.ClientTLS(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}, nil
}

// Records returns the fake Bedrock's request records.
func (s *Stack) Records() []bedrock.Record { return s.Fakes.Bedrock.Records() }

// ResetRecords forgets the fake Bedrock's records and STS calls.
func (s *Stack) ResetRecords() {
	s.Fakes.Bedrock.ResetRecords()
	s.Fakes.STS.ResetCalls()
}

// proc is a child process with its output in Dir/<name>.log.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stack: %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("stack: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) stop() error { return p.stopWithin(10 * time.Second) }

// stopWithin sends SIGTERM and kills the process if it has not exited
// after d.
func (p *proc) stopWithin(d time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("stack: %s did not stop on SIGTERM; killed", p.name)
}
