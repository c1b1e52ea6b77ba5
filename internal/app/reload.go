package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/extauthz"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/jwtverify"
	pmetrics "github.com/tenantgate/tenantgate/internal/metrics"
	"github.com/tenantgate/tenantgate/internal/plan"
)

// ConfigSource is where a running App re-reads its configuration on
// Reload (SIGHUP in the binary) and, every server.config_poll, checks for
// a changed file.
type ConfigSource struct {
	// Path is the configuration file; empty means there is nothing to
	// reload (defaults only).
	Path string
	// Parse turns the file's bytes into a configuration exactly as the
	// process was started (environment, command-line flags, validation).
	Parse func(data []byte) (*config.Config, error)
}

// Reload results (label result of tenantgate_config_reloads_total).
const (
	reloadOK        = "ok"
	reloadError     = "error"
	reloadUnchanged = "unchanged"
)

// generation is the reloadable part of a running App: everything built
// from auth (except api_keys), plans and service. Calls hold users for
// reading while they use it; a replaced generation is retired (its JWKS
// refresh stopped) once the calls that started on it are done.
type generation struct {
	cfg      *config.Config
	hash     string // sha256 of the file it was read from ("" without one)
	authz    *extauthz.Server
	plans    *plan.Catalog
	verifier *jwtverify.Verifier
	// stopVerifier stops verifier's background JWKS refresh; nil when a
	// later generation took the verifier over (auth unchanged).
	stopVerifier context.CancelFunc
	users        sync.RWMutex
}

// reloadMetrics are the App's configuration metrics.
type reloadMetrics struct {
	reloads *prometheus.CounterVec
	loaded  prometheus.Gauge
	info    *prometheus.GaugeVec
}

func newReloadMetrics(reg prometheus.Registerer) (*reloadMetrics, error) {
	m := &reloadMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_config_reloads_total",
			Help: "Configuration reloads (SIGHUP or a changed file) by result: ok, error (refused; the previous configuration stays in force), unchanged.",
		}, []string{"result"}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_config_loaded_timestamp_seconds",
			Help: "Unix time at which the configuration in force was loaded.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantgate_config_info",
			Help: "1 for the configuration in force, labelled with the first 12 hex digits of its file's SHA-256.",
		}, []string{"sha256"}),
	}
	var err error
	if m.reloads, err = pmetrics.Register(reg, m.reloads); err != nil {
		return nil, err
	}
	if m.loaded, err = pmetrics.Register(reg, m.loaded); err != nil {
		return nil, err
	}
	if m.info, err = pmetrics.Register(reg, m.info); err != nil {
		return nil, err
	}
	for _, r := range []string{reloadOK, reloadError, reloadUnchanged} {
		m.reloads.WithLabelValues(r)
	}
	return m, nil
}

func (m *reloadMetrics) setLoaded(hash string) {
	m.info.Reset()
	m.info.WithLabelValues(shortHash(hash)).Set(1)
	m.loaded.SetToCurrentTime()
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// buildGeneration builds the reloadable components from cfg. prev, when
// set and its auth section equals cfg's, lends its JWT verifier (and its
// warm JWKS cache) to the new generation.
func (a *App) buildGeneration(cfg *config.Config, hash string, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg, hash: hash}
	if prev != nil && reflect.DeepEqual(prev.cfg.Auth, cfg.Auth) {
		g.verifier = prev.verifier
	} else {
		vctx, stop := context.WithCancel(a.bgCtx)
		v, err := jwtverify.New(vctx, cfg.Auth, jwtverify.Options{
			HTTPClient: a.httpClient,
			Logger:     a.log.With("component", "jwtverify"),
			Registerer: a.reg,
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("app: %w", err)
		}
		g.verifier, g.stopVerifier = v, stop
	}
	fail := func(err error) (*generation, error) {
		if g.stopVerifier != nil {
			g.stopVerifier()
		}
		return nil, err
	}
	var keys extauthz.KeyAuthenticator
	if a.keys != nil {
		keys = a.keys
	}
	authz, err := extauthz.New(extauthz.Options{
		Auth:       cfg.Auth,
		Plans:      cfg.Plans,
		Service:    cfg.Service,
		Logger:     a.log.With("component", "extauthz"),
		Registerer: a.reg,
		Getenv:     a.getenv,
	}, g.verifier, keys, a.store)
	if err != nil {
		return fail(fmt.Errorf("app: %w", err))
	}
	plans, err := plan.New(cfg.Plans)
	if err != nil {
		return fail(fmt.Errorf("app: %w", err))
	}
	g.authz, g.plans = authz, plans
	return g, nil
}

// acquire returns the generation in force, held for reading until release.
func (a *App) acquire() *generation {
	g := a.live.Load()
	g.users.RLock()
	return g
}

func (g *generation) release() { g.users.RUnlock() }

// retire stops what only old uses, once no call is still using it.
func (a *App) retire(old *generation, next *generation) {
	if old.verifier == next.verifier {
		// The new generation took the verifier over, with its refresh.
		next.stopVerifier, old.stopVerifier = old.stopVerifier, nil
		return
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		old.users.Lock() // every call that started on old has finished
		defer old.users.Unlock()
		if old.stopVerifier != nil {
			old.stopVerifier()
		}
	}()
}

// Reload re-reads the configuration source and swaps in the reloadable
// settings (auth issuers and credential rules, plans, service principals)
// without interrupting calls. A configuration that does not parse,
// validate or build is refused: the error is returned and logged, and the
// configuration in force stays. Settings that need a restart (listeners,
// TLS files, store, auth.api_keys, extproc, usage) keep their running values and
// are logged as such.
func (a *App) Reload(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.source.Path == "" || a.source.Parse == nil {
		a.log.WarnContext(ctx, "configuration reload requested, but serve was started without --config: nothing to reload")
		return errors.New("app: reload: no configuration file")
	}
	data, err := os.ReadFile(a.source.Path)
	if err != nil {
		return a.refuse(ctx, fmt.Errorf("read %s: %w", a.source.Path, err), "")
	}
	return a.apply(ctx, data)
}

func (a *App) apply(ctx context.Context, data []byte) error {
	hash := hashOf(data)
	cur := a.live.Load()
	if hash == cur.hash {
		a.rm.reloads.WithLabelValues(reloadUnchanged).Inc()
		a.log.InfoContext(ctx, "configuration reload: file unchanged", slog.String("sha256", shortHash(hash)))
		return nil
	}
	cfg, err := a.source.Parse(data)
	if err != nil {
		return a.refuse(ctx, err, hash)
	}
	next, restart := reloadable(cur.cfg, a.parsed, cfg)
	g, err := a.buildGeneration(next, hash, cur)
	if err != nil {
		return a.refuse(ctx, err, hash)
	}
	a.live.Store(g)
	a.retire(cur, g)
	a.lastFailed = ""
	a.rm.reloads.WithLabelValues(reloadOK).Inc()
	a.rm.setLoaded(hash)
	for _, key := range restart {
		a.log.WarnContext(ctx, "configuration reload: setting changed but needs a restart; the running value stays",
			slog.String("key", key))
	}
	a.log.InfoContext(ctx, "configuration reloaded",
		slog.String("sha256", shortHash(hash)),
		slog.Any("issuers", issuerNames(next)),
		slog.Int("plan_tiers", len(next.Plans.Models)),
		slog.Any("needs_restart", restart))
	return nil
}

func (a *App) refuse(ctx context.Context, err error, hash string) error {
	a.rm.reloads.WithLabelValues(reloadError).Inc()
	if hash != "" {
		a.lastFailed = hash
	}
	a.log.ErrorContext(ctx, "configuration reload refused; the previous configuration stays in force",
		slog.String("error", oneLine(err)))
	return fmt.Errorf("app: reload: %w", err)
}

// reloadable returns the configuration to run after a reload from cur to
// next: next's reloadable sections with cur's values for everything else,
// and the keys whose change needs a restart (compared with parsed, the
// configuration as the process was started, before New's own defaults).
func reloadable(cur, parsed, next *config.Config) (*config.Config, []string) {
	out := *cur
	out.Auth = next.Auth
	out.Auth.APIKeys = cur.Auth.APIKeys
	out.Plans = next.Plans
	out.Service = next.Service
	var restart []string
	for _, s := range []struct {
		key      string
		old, new any
	}{
		{"server", parsed.Server, next.Server},
		{"store", parsed.Store, next.Store},
		{"auth.api_keys", parsed.Auth.APIKeys, next.Auth.APIKeys},
		{"extproc", parsed.ExtProc, next.ExtProc},
		{"usage", parsed.Usage, next.Usage},
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			restart = append(restart, s.key)
		}
	}
	return &out, restart
}

// watch reloads on every signal from reloads and, every poll, when the
// file's content changed (a content that failed once is not retried until
// it changes again). It returns when ctx ends.
func (a *App) watch(ctx context.Context, reloads <-chan struct{}, poll time.Duration) {
	var tick <-chan time.Time
	if poll > 0 && a.source.Path != "" {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-reloads:
			a.log.InfoContext(ctx, "configuration reload requested")
			_ = a.Reload(ctx) // logged and counted
		case <-tick:
			data, err := os.ReadFile(a.source.Path)
			if err != nil {
				continue
			}
			h := hashOf(data)
			a.reloadMu.Lock()
			changed := h != a.live.Load().hash && h != a.lastFailed
			if changed {
				a.log.InfoContext(ctx, "configuration file changed", slog.String("path", a.source.Path))
				_ = a.apply(ctx, data)
			}
			a.reloadMu.Unlock()
		}
	}
}

// oneLine joins a multi-line error (joined validation errors) into one line.
func oneLine(err error) string {
	lines := strings.Split(err.Error(), "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

func issuerNames(c *config.Config) []string {
	out := make([]string, 0, len(c.Auth.Issuers))
	for _, is := range c.Auth.Issuers {
		out = append(out, is.Issuer)
	}
	return out
}

// authzFront is the Authorization service registered on the gRPC server:
// it hands every Check to the generation in force.
type authzFront struct {
	authv3.UnimplementedAuthorizationServer
	a *App
}

func (f authzFront) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	g := f.a.acquire()
	defer g.release()
	return g.authz.Check(ctx, req)
}

// planFront answers ext_proc's plan questions from the generation in force.
type planFront struct{ a *App }

func (p planFront) ModelAllowed(tier, modelID string) bool {
	g := p.a.acquire()
	defer g.release()
	return g.plans.ModelAllowed(tier, modelID)
}

func (p planFront) BedrockHeaderAllowed(tier, name string) bool {
	g := p.a.acquire()
	defer g.release()
	return g.plans.BedrockHeaderAllowed(tier, name)
}

func (p planFront) RejectUnlistedBedrockHeaders() bool {
	g := p.a.acquire()
	defer g.release()
	return g.plans.RejectUnlistedBedrockHeaders()
}

// verifierReady is the readiness check of the verifier in force.
func (a *App) verifierReady(ctx context.Context) error {
	g := a.acquire()
	defer g.release()
	return g.verifier.Ready(ctx)
}
