// Package config owns tenantgate's configuration: the YAML file schema, its
// defaults, the environment variables that may carry secrets instead of the
// file, and validation. Each section lives in its own file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of `tenantgate serve`.
type Config struct {
	Server  Server  `yaml:"server"`
	Store   Store   `yaml:"store"`
	Auth    Auth    `yaml:"auth"`
	Plans   Plans   `yaml:"plans"`
	Service Service `yaml:"service"`
	ExtProc ExtProc `yaml:"extproc"`
	Usage   Usage   `yaml:"usage"`
}

// Server configures the listeners and process behaviour.
type Server struct {
	// GRPCListen is where ext_authz, ext_proc and gRPC health listen:
	// host:port or unix:/path (default 127.0.0.1:9191). An address reachable
	// beyond loopback is refused unless grpc_tls is set or
	// grpc_insecure_listen is true.
	GRPCListen string `yaml:"grpc_listen"`
	// GRPCSocketMode is the octal permission of a unix: gRPC socket
	// (default 0600: only tenantgate's user; 0660 adds its group).
	GRPCSocketMode string `yaml:"grpc_socket_mode"`
	// GRPCTLS requires mutual TLS on the gRPC listener.
	GRPCTLS GRPCTLS `yaml:"grpc_tls"`
	// GRPCInsecureListen allows a gRPC address reachable beyond loopback
	// without grpc_tls (default false). Only for networks where something
	// else (a NetworkPolicy, Istio STRICT mTLS with an AuthorizationPolicy)
	// admits only Envoy.
	GRPCInsecureListen bool `yaml:"grpc_insecure_listen"`
	// HTTPListen serves /healthz, /readyz and /metrics (default 127.0.0.1:9192).
	HTTPListen    string   `yaml:"http_listen"`
	ShutdownGrace Duration `yaml:"shutdown_grace"` // default 20s
	// ShutdownDrain is how long, after SIGTERM, tenantgate keeps serving
	// every call while gRPC health and /readyz already say NOT_SERVING, so
	// that Envoy's health checks move traffic to the other replicas before
	// it stops accepting calls (default DefaultShutdownDrain; "0s" skips
	// it). Make it longer than Envoy's health check interval times its
	// unhealthy_threshold plus the check timeout.
	ShutdownDrain *Duration `yaml:"shutdown_drain"`
	// ConfigPoll is how often the --config file is checked for a change,
	// which is then reloaded as on SIGHUP (default DefaultConfigPoll; "0s"
	// reloads on SIGHUP only).
	ConfigPoll *Duration `yaml:"config_poll"`
	LogLevel   string    `yaml:"log_level"`  // debug, info, warn, error; default info
	LogFormat  string    `yaml:"log_format"` // json or text; default json
	// PprofListen serves net/http/pprof (CPU, heap, goroutine profiles) on
	// this loopback host:port, on a listener of its own, when set. Off by
	// default; an address beyond loopback is refused (profiles expose
	// memory contents).
	PprofListen string `yaml:"pprof_listen"`
}

// DefaultShutdownDrain is server.shutdown_drain's default: longer than the
// shipped Envoy health check needs to notice NOT_SERVING (interval 2s ×
// unhealthy_threshold 2 + timeout 1s).
const DefaultShutdownDrain = 6 * time.Second

// Drain returns server.shutdown_drain (zero when unset).
func (s Server) Drain() time.Duration {
	if s.ShutdownDrain == nil {
		return 0
	}
	return s.ShutdownDrain.D()
}

// DefaultConfigPoll is server.config_poll's default.
const DefaultConfigPoll = 10 * time.Second

// Poll returns server.config_poll (zero when unset: no polling).
func (s Server) Poll() time.Duration {
	if s.ConfigPoll == nil {
		return 0
	}
	return s.ConfigPoll.D()
}

// Duration is a time.Duration that reads "300s", "5m" or a number of seconds.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts Go duration strings and integer seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	if v, err := time.ParseDuration(s); err == nil {
		*d = Duration(v)
		return nil
	}
	// A bare integer is seconds. Fractions ("1.5") are refused rather than
	// truncated; use "1500ms".
	secs, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
		return fmt.Errorf("line %d: invalid duration %q (want e.g. 30s, 5m)", n.Line, s)
	}
	*d = Duration(time.Duration(secs) * time.Second)
	return nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Environment variables read by Load.
const (
	EnvDatabaseURL       = "TENANTGATE_DATABASE_URL"
	EnvListenDatabaseURL = "TENANTGATE_LISTEN_DATABASE_URL"
	EnvAPIKeySecret      = "API_KEY_SECRET"
	EnvSupabaseJWTSecret = "SUPABASE_JWT_SECRET"
	EnvSupabaseAnonKey   = "SUPABASE_ANON_KEY"
)

// Load reads a YAML file (path may be empty for defaults only), applies
// environment overrides and defaults, and validates the result.
func Load(path string, getenv func(string) string) (*Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		data = b
	}
	return Parse(data, getenv)
}

// Parse is Load for bytes already read.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var c Config
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		// A file of only comments decodes as io.EOF: it means defaults.
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	c.applyEnv(getenv)
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyEnv(getenv func(string) string) {
	if v := getenv(EnvDatabaseURL); v != "" {
		c.Store.DatabaseURL = v
	}
	if v := getenv(EnvListenDatabaseURL); v != "" {
		c.Store.ListenDatabaseURL = v
	}
	if c.ExtProc.DefaultRegion == "" {
		c.ExtProc.DefaultRegion = getenv("AWS_REGION")
	}
	if c.ExtProc.DefaultRegion == "" {
		c.ExtProc.DefaultRegion = "us-east-1"
	}
	if v := getenv(EnvAPIKeySecret); v != "" {
		c.Auth.APIKeys.Secret = v
	}
	for i := range c.Auth.Issuers {
		is := &c.Auth.Issuers[i]
		if is.HS256SecretEnv == "" && i == 0 {
			is.HS256SecretEnv = EnvSupabaseJWTSecret
		}
		if is.HS256SecretEnv != "" && is.HS256SecretEnv != "-" {
			if v := getenv(is.HS256SecretEnv); v != "" {
				is.HS256Secret = v
			}
		}
		for h, env := range is.JWKSHeadersEnv {
			if v := getenv(env); v != "" {
				if is.JWKSHeaders == nil {
					is.JWKSHeaders = map[string]string{}
				}
				is.JWKSHeaders[h] = v
			}
		}
	}
}

func (c *Config) applyDefaults() {
	s := &c.Server
	if s.GRPCListen == "" {
		s.GRPCListen = DefaultGRPCListen
	}
	if s.GRPCSocketMode == "" {
		s.GRPCSocketMode = DefaultGRPCSocketMode
	}
	if s.GRPCTLS.MinVersion == "" {
		s.GRPCTLS.MinVersion = "1.2"
	}
	if s.HTTPListen == "" {
		s.HTTPListen = DefaultHTTPListen
	}
	if s.ShutdownGrace == 0 {
		s.ShutdownGrace = Duration(20 * time.Second)
	}
	if s.ShutdownDrain == nil {
		d := Duration(DefaultShutdownDrain)
		s.ShutdownDrain = &d
	}
	if s.ConfigPoll == nil {
		d := Duration(DefaultConfigPoll)
		s.ConfigPoll = &d
	}
	if s.LogLevel == "" {
		s.LogLevel = "info"
	}
	if s.LogFormat == "" {
		s.LogFormat = "json"
	}
	c.Store.applyDefaults()
	c.Auth.applyDefaults()
	c.Plans.applyDefaults()
	c.Service.applyDefaults()
	c.ExtProc.applyDefaults()
	c.Usage.applyDefaults()
}

// Validate reports every problem found, joined.
func (c *Config) Validate() error {
	var errs []error
	switch c.Server.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("server.log_level: %q is not one of debug, info, warn, error", c.Server.LogLevel))
	}
	switch c.Server.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("server.log_format: %q is not json or text", c.Server.LogFormat))
	}
	if c.Server.ShutdownGrace < 0 {
		errs = append(errs, errors.New("server.shutdown_grace: must not be negative"))
	}
	if c.Server.ShutdownDrain != nil && *c.Server.ShutdownDrain < 0 {
		errs = append(errs, errors.New("server.shutdown_drain: must not be negative"))
	}
	if c.Server.ConfigPoll != nil && *c.Server.ConfigPoll < 0 {
		errs = append(errs, errors.New("server.config_poll: must not be negative"))
	}
	if c.Server.GRPCListen == c.Server.HTTPListen && !strings.HasSuffix(c.Server.GRPCListen, ":0") {
		errs = append(errs, fmt.Errorf("server: grpc_listen and http_listen are both %q", c.Server.GRPCListen))
	}
	if c.Server.PprofListen != "" {
		if ok, err := isLoopbackListen(c.Server.PprofListen); err != nil || !ok {
			errs = append(errs, fmt.Errorf("server.pprof_listen: %q is not a loopback host:port (profiles expose memory contents)", c.Server.PprofListen))
		}
		if c.Server.PprofListen == c.Server.HTTPListen || c.Server.PprofListen == c.Server.GRPCListen {
			errs = append(errs, fmt.Errorf("server: pprof_listen and %s are both %q",
				map[bool]string{true: "http_listen", false: "grpc_listen"}[c.Server.PprofListen == c.Server.HTTPListen], c.Server.PprofListen))
		}
	}
	errs = append(errs, c.Server.validateGRPC()...)
	errs = append(errs, c.Store.validate()...)
	errs = append(errs, c.Auth.validate()...)
	errs = append(errs, c.Plans.validate()...)
	errs = append(errs, c.Service.validate()...)
	errs = append(errs, c.ExtProc.validate()...)
	errs = append(errs, c.Usage.validate(c.Store)...)
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}
