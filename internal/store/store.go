// Package store owns where tenantgate reads tenants from: it opens the
// PostgreSQL store (invalidated by LISTEN/NOTIFY), a tenants file (reloaded
// on change) or, when asked for, the embedded demo tenants, always behind
// the in-process TTL cache, and applies the database migrations.
package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/metrics"
	"github.com/tenantgate/tenantgate/internal/store/cache"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/store/pgstore"
)

// Store is every lookup tenantgate makes, for wiring in cmd: the cache's
// Source, which both backends and the cache itself implement. Consumers
// declare the subsets they use.
type Store = cache.Source

var _ Store = (*cache.Cache)(nil)

// Open opens the configured store behind the cache: PostgreSQL
// (cfg.DatabaseURL), a tenants file (cfg.TenantsFile) or, only when
// cfg.Demo asks for it, the embedded demo tenants (filestore.DefaultTenants).
// A configuration naming none is refused (config.Store.Kind). Metrics are
// registered on reg (may be nil).
func Open(ctx context.Context, cfg config.Store, logger *slog.Logger, reg prometheus.Registerer) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kind, err := cfg.Kind()
	if err != nil {
		return nil, err
	}
	m, err := cache.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	copts := cache.Options{
		TTL:                cfg.CacheTTL.D(),
		NegativeTTL:        cfg.NegativeCacheTTL.D(),
		NegativeMaxEntries: cfg.NegativeCacheSize,
		KeyLookupRate:      float64(cfg.APIKeyLookupRate),
		KeyLookupBurst:     cfg.APIKeyLookupBurst,
		StaleIfError:       cfg.StaleIfError.D(),
		Metrics:            m,
	}
	switch kind {
	case config.StorePostgres:
		return openPostgres(ctx, cfg, copts, logger, reg)
	case config.StoreTenantsFile:
		var c *cache.Cache
		fs, err := filestore.Open(ctx, cfg.TenantsFile, filestore.Options{
			Logger:   logger.With("component", "tenants_file"),
			OnReload: func() { c.Flush() },
		})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		c = cache.New(fs, copts)
		logger.InfoContext(ctx, "store: tenants file", "path", cfg.TenantsFile)
		return c, nil
	case config.StoreDemo:
		fs, err := filestore.Load(filestore.DefaultTenants)
		if err != nil {
			return nil, fmt.Errorf("store: embedded demo tenants: %w", err)
		}
		logger.WarnContext(ctx, "store: --demo: serving the embedded DEMO tenants (public demo data)")
		return cache.New(fs, copts), nil
	default:
		return nil, fmt.Errorf("store: unknown store kind %q", kind)
	}
}

func openPostgres(ctx context.Context, cfg config.Store, copts cache.Options, logger *slog.Logger, reg prometheus.Registerer) (Store, error) {
	listening, err := newListenGauge(reg)
	if err != nil {
		return nil, err
	}
	listening.Set(0)
	pg, err := pgstore.Open(ctx, cfg.DatabaseURL, pgstore.Options{
		MaxConns:     cfg.MaxConns,
		QueryTimeout: cfg.QueryTimeout.D(),
		Logger:       logger.With("component", "pgstore"),
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	c := cache.New(pg, copts)
	listenURL, err := cfg.ListenURL()
	if err != nil {
		// Through a transaction-mode pooler LISTEN would look healthy and
		// deliver nothing: say so, and leave the gauge at 0 for alerting.
		logger.WarnContext(ctx, "store: "+err.Error())
		logger.InfoContext(ctx, "store: postgres", "listening", false)
		return c, nil
	}
	l, err := pgstore.StartListener(ctx, listenURL, pgstore.ListenerOptions{
		OnEvent:        func(ev pgstore.Event) { c.Invalidate(cache.Event(ev)) },
		OnReset:        c.Flush,
		OnGap:          c.Expire,
		OnListening:    func() { listening.Set(1) },
		OnDisconnected: func() { listening.Set(0) },
		Logger:         logger.With("component", "pgstore_listener"),
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("store: invalidation listener: %w", err)
	}
	c.OnClose(l.Close)
	c.OnClose(func() { listening.Set(0) })
	// Wait briefly for LISTEN so that invalidation covers the first lookups;
	// if it is late the listener keeps retrying and flushes when it connects.
	select {
	case <-l.Ready():
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("store: waiting for the invalidation listener: %w", ctx.Err())
	case <-time.After(listenerWait):
		logger.WarnContext(ctx, "store: invalidation listener not ready yet; continuing", "waited", listenerWait)
	}
	logger.InfoContext(ctx, "store: postgres", "listening", true, "separate_listen_url", cfg.ListenDatabaseURL != "")
	return c, nil
}

// newListenGauge registers tenantgate_store_listen_active (PostgreSQL store
// only): 1 while the invalidation listener's LISTEN is active, 0 while it
// reconnects or when tenantgate does not listen (transaction-mode pooler).
func newListenGauge(reg prometheus.Registerer) (prometheus.Gauge, error) {
	g, err := metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "tenantgate", Subsystem: "store", Name: "listen_active",
		Help: "1 while the PostgreSQL invalidation listener (LISTEN/NOTIFY) is active; 0 while it reconnects or when not listening (transaction-mode pooler without store.listen_database_url), in which case changes wait out store.cache_ttl.",
	}))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return g, nil
}

// Tiers lists the distinct plan tiers of the configured store (PostgreSQL,
// tenants file or the embedded demo tenants), with tenant.NoTier standing for
// accounts without a plan. It opens the backend without cache or listener
// and closes it before returning; it is for operator checks, not requests.
func Tiers(ctx context.Context, cfg config.Store) ([]string, error) {
	b, err := OpenDirect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.(interface {
		Tiers(context.Context) ([]string, error)
	}).Tiers(ctx)
}

// OpenDirect opens the configured backend (PostgreSQL with one connection,
// a tenants file read once, or the embedded demo tenants) without cache,
// listener or reloading: every lookup reads the source. It is for one-shot
// operator commands (check-config, explain), not for serving.
func OpenDirect(ctx context.Context, cfg config.Store) (Store, error) {
	kind, err := cfg.Kind()
	if err != nil {
		return nil, err
	}
	switch kind {
	case config.StorePostgres:
		pg, err := pgstore.Open(ctx, cfg.DatabaseURL, pgstore.Options{MaxConns: 1, QueryTimeout: cfg.QueryTimeout.D()})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return pg, nil
	case config.StoreTenantsFile:
		data, err := os.ReadFile(cfg.TenantsFile)
		if err != nil {
			return nil, fmt.Errorf("store: tenants file: %w", err)
		}
		fs, err := filestore.Load(data)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", cfg.TenantsFile, err)
		}
		return fs, nil
	default:
		fs, err := filestore.Load(filestore.DefaultTenants)
		if err != nil {
			return nil, fmt.Errorf("store: embedded demo tenants: %w", err)
		}
		return fs, nil
	}
}

// listenerWait bounds how long Open waits for LISTEN to become active.
const listenerWait = 5 * time.Second

// Migrate applies the embedded migrations to databaseURL: the development
// basejump schema first when withDevSchema, then the core set.
func Migrate(ctx context.Context, databaseURL string, withDevSchema bool, logger *slog.Logger) error {
	return pgstore.Migrate(ctx, databaseURL, withDevSchema, logger)
}
