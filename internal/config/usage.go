package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Usage configures usage metering: one record per Bedrock request with the
// tokens AWS reported, exported as Prometheus metrics and stored (the
// postgres store: table tenantgate.usage_records; the tenants-file store:
// the NDJSON file ndjson_path), optionally debiting credits.
type Usage struct {
	// Enabled turns metering on (default true). Envoy must also run the
	// metering ext_proc filter (envoy/envoy.yaml).
	Enabled *bool `yaml:"enabled"`
	// QueueSize bounds records waiting for the sink; when full, records
	// are dropped and counted (default 10000).
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most records written in one transaction (default 200).
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is the longest a record waits for its batch (default 1s).
	FlushInterval Duration `yaml:"flush_interval"`
	// NDJSONPath is the file records are appended to when the store is not
	// PostgreSQL; empty keeps metrics only.
	NDJSONPath string `yaml:"ndjson_path"`
	// AccountLabels > 0 exports per-account token counters for at most
	// that many accounts (the rest count as "other"); 0 (default) exports
	// none.
	AccountLabels int `yaml:"account_labels"`
	// Credits debits public.credit_accounts.balance by the price table
	// (postgres store only).
	Credits Credits `yaml:"credits"`
}

// Credits is the opt-in credit debit of usage records.
type Credits struct {
	// Enabled debits each new usage record's cost (the price table's sum)
	// from public.credit_accounts.balance, in the transaction that stores
	// the record; default false.
	Enabled bool `yaml:"enabled"`
	// Prices maps a model id or ARN (a trailing "*" makes a prefix) to its
	// cost in credits per million tokens.
	Prices map[string]Price `yaml:"prices"`
}

// Price is a model's cost in credits per million tokens of each kind.
type Price struct {
	Input      float64 `yaml:"input"`
	Output     float64 `yaml:"output"`
	CacheRead  float64 `yaml:"cache_read"`
	CacheWrite float64 `yaml:"cache_write"`
}

// Usage defaults.
const (
	DefaultUsageQueueSize     = 10000
	DefaultUsageBatchSize     = 200
	DefaultUsageFlushInterval = time.Second
)

// On reports whether metering is enabled.
func (u Usage) On() bool { return u.Enabled == nil || *u.Enabled }

func (u *Usage) applyDefaults() {
	if u.QueueSize == 0 {
		u.QueueSize = DefaultUsageQueueSize
	}
	if u.BatchSize == 0 {
		u.BatchSize = DefaultUsageBatchSize
	}
	if u.FlushInterval == 0 {
		u.FlushInterval = Duration(DefaultUsageFlushInterval)
	}
}

func (u Usage) validate(store Store) []error {
	var errs []error
	if u.QueueSize < 1 || u.QueueSize > 10_000_000 {
		errs = append(errs, fmt.Errorf("usage.queue_size: %d is not between 1 and 10000000", u.QueueSize))
	}
	if u.BatchSize < 1 || u.BatchSize > 10_000 {
		errs = append(errs, fmt.Errorf("usage.batch_size: %d is not between 1 and 10000", u.BatchSize))
	}
	if u.FlushInterval <= 0 {
		errs = append(errs, errors.New("usage.flush_interval: must be positive"))
	}
	if u.AccountLabels < 0 || u.AccountLabels > 10_000 {
		errs = append(errs, fmt.Errorf("usage.account_labels: %d is not between 0 and 10000", u.AccountLabels))
	}
	kind, _ := store.Kind()
	if u.NDJSONPath != "" && kind == StorePostgres {
		errs = append(errs, errors.New("usage.ndjson_path: the postgres store writes usage into tenantgate.usage_records; remove ndjson_path"))
	}
	if u.Credits.Enabled {
		if !u.On() {
			errs = append(errs, errors.New("usage.credits.enabled: needs usage.enabled"))
		}
		if kind != StorePostgres {
			errs = append(errs, errors.New("usage.credits.enabled: credits are debited in PostgreSQL (public.credit_accounts); the store is not postgres"))
		}
		if len(u.Credits.Prices) == 0 {
			errs = append(errs, errors.New("usage.credits.prices: credits are enabled but no model has a price"))
		}
	}
	for model, p := range u.Credits.Prices {
		if strings.TrimSpace(model) == "" {
			errs = append(errs, errors.New("usage.credits.prices: empty model key"))
		}
		for name, v := range map[string]float64{"input": p.Input, "output": p.Output, "cache_read": p.CacheRead, "cache_write": p.CacheWrite} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				errs = append(errs, fmt.Errorf("usage.credits.prices[%q].%s: must be a non-negative number", model, name))
			}
		}
	}
	return errs
}
