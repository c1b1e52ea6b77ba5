// Package store owns where tenantgate reads tenants from: it opens the
// PostgreSQL store (invalidated by LISTEN/NOTIFY), a tenants file (reloaded
// on change) or the embedded demo tenants, always behind the in-process TTL
// cache, and applies the database migrations.
package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/store/cache"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/store/pgstore"
)

// Store is every lookup tenantgate makes, for wiring in cmd: the cache's
// Source, which both backends and the cache itself implement. Consumers
// declare the subsets they use.
type Store = cache.Source

var _ Store = (*cache.Cache)(nil)

// Open opens the configured store behind the cache: PostgreSQL when
// cfg.DatabaseURL is set, else cfg.TenantsFile, else the embedded demo
// tenants (filestore.DefaultTenants). Metrics are registered on reg (may be
// nil).
func Open(ctx context.Context, cfg config.Store, logger *slog.Logger, reg prometheus.Registerer) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	metrics, err := cache.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	copts := cache.Options{
		TTL:         cfg.CacheTTL.D(),
		NegativeTTL: cfg.NegativeCacheTTL.D(),
		Metrics:     metrics,
	}
	switch {
	case cfg.DatabaseURL != "":
		return openPostgres(ctx, cfg, copts, logger)
	case cfg.TenantsFile != "":
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
	default:
		fs, err := filestore.Load(filestore.DefaultTenants)
		if err != nil {
			return nil, fmt.Errorf("store: embedded demo tenants: %w", err)
		}
		logger.WarnContext(ctx, "store: no database_url or tenants_file configured; serving the embedded DEMO tenants")
		return cache.New(fs, copts), nil
	}
}

func openPostgres(ctx context.Context, cfg config.Store, copts cache.Options, logger *slog.Logger) (Store, error) {
	pg, err := pgstore.Open(ctx, cfg.DatabaseURL, pgstore.Options{
		MaxConns:     cfg.MaxConns,
		QueryTimeout: cfg.QueryTimeout.D(),
		Logger:       logger.With("component", "pgstore"),
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	c := cache.New(pg, copts)
	l, err := pgstore.StartListener(ctx, cfg.DatabaseURL, pgstore.ListenerOptions{
		OnEvent: func(ev pgstore.Event) { c.Invalidate(cache.Event(ev)) },
		OnReset: c.Flush,
		Logger:  logger.With("component", "pgstore_listener"),
	})
	if err != nil {
		pg.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	c.OnClose(l.Close)
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
	logger.InfoContext(ctx, "store: postgres")
	return c, nil
}

// Tiers lists the distinct plan tiers of the configured store (PostgreSQL,
// tenants file or the embedded demo tenants), with tenant.NoTier standing for
// accounts without a plan. It opens the backend without cache or listener
// and closes it before returning; it is for operator checks, not requests.
func Tiers(ctx context.Context, cfg config.Store) ([]string, error) {
	switch {
	case cfg.DatabaseURL != "":
		pg, err := pgstore.Open(ctx, cfg.DatabaseURL, pgstore.Options{MaxConns: 1, QueryTimeout: cfg.QueryTimeout.D()})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		defer pg.Close()
		return pg.Tiers(ctx)
	case cfg.TenantsFile != "":
		data, err := os.ReadFile(cfg.TenantsFile)
		if err != nil {
			return nil, fmt.Errorf("store: tenants file: %w", err)
		}
		fs, err := filestore.Load(data)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", cfg.TenantsFile, err)
		}
		return fs.Tiers(ctx)
	default:
		fs, err := filestore.Load(filestore.DefaultTenants)
		if err != nil {
			return nil, fmt.Errorf("store: embedded demo tenants: %w", err)
		}
		return fs.Tiers(ctx)
	}
}

// listenerWait bounds how long Open waits for LISTEN to become active.
const listenerWait = 5 * time.Second

// Migrate applies the embedded migrations to databaseURL: the development
// basejump schema first when withDevSchema, then the core set.
func Migrate(ctx context.Context, databaseURL string, withDevSchema bool, logger *slog.Logger) error {
	return pgstore.Migrate(ctx, databaseURL, withDevSchema, logger)
}
