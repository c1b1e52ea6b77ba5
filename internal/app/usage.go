package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/usage"
)

// usagePoolConns bounds the connections the usage writer holds: one batch
// is written at a time.
const usagePoolConns = 2

// buildUsage builds the usage recorder and its sink: the postgres store's
// database (table tenantgate.usage_records), else the NDJSON file if one is
// configured, else none (metrics only). The recorder's writer runs in Run
// and its sink is closed in release, after the final flush.
func (a *App) buildUsage(ctx context.Context, c *config.Config, storeKind string, reg prometheus.Registerer) (*usage.Recorder, error) {
	var sink usage.Sink
	switch {
	case storeKind == config.StorePostgres:
		pcfg, err := pgxpool.ParseConfig(c.Store.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("app: usage: database url: %w", err)
		}
		pcfg.MaxConns = usagePoolConns
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, fmt.Errorf("app: usage: open database: %w", err)
		}
		a.closers = append(a.closers, pool.Close)
		sink = usage.NewPGSink(pool, c.Usage.Credits.Enabled)
	case c.Usage.NDJSONPath != "":
		f, err := usage.OpenNDJSON(c.Usage.NDJSONPath)
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		a.closers = append(a.closers, func() { _ = f.Close() })
		sink = f
	}
	var prices usage.PriceTable
	if c.Usage.Credits.Enabled {
		prices = usage.PriceTable(c.Usage.Credits.Prices)
	}
	rec, err := usage.NewRecorder(usage.Options{
		Sink:          sink,
		QueueSize:     c.Usage.QueueSize,
		BatchSize:     c.Usage.BatchSize,
		FlushInterval: c.Usage.FlushInterval.D(),
		Prices:        prices,
		AccountLabels: c.Usage.AccountLabels,
		Registerer:    reg,
		Logger:        a.log.With("component", "usage"),
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return rec, nil
}
