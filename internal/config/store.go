package config

import (
	"errors"
	"time"
)

// Store selects where accounts, plans, API keys and routes are read from.
type Store struct {
	// DatabaseURL is a PostgreSQL URL (env TENANTGATE_DATABASE_URL). When
	// empty, TenantsFile is used; when both are empty the embedded demo
	// tenants file is used.
	DatabaseURL string `yaml:"database_url"`
	// TenantsFile is a YAML tenants file (accounts, members, tiers, API keys,
	// routes). It is re-read when it changes.
	TenantsFile string `yaml:"tenants_file"`
	// CacheTTL bounds how long a lookup is cached in-process (default 300s).
	// Postgres changes invalidate entries sooner through LISTEN/NOTIFY.
	CacheTTL Duration `yaml:"cache_ttl"`
	// NegativeCacheTTL bounds how long a "not found" is cached (default 30s).
	NegativeCacheTTL Duration `yaml:"negative_cache_ttl"`
	// NegativeCacheSize bounds the cached "not found" answers of each lookup
	// kind (default 10000). They are held apart from found entries, under a
	// hash of the key, so unknown keys never evict the ones that exist.
	NegativeCacheSize int `yaml:"negative_cache_size"`
	// APIKeyLookupRate limits store lookups of API keys not known to exist
	// (random or unknown pk_… ids) per second (default 50). Over the limit
	// they are answered 503 unavailable without a query; keys found before
	// are never limited.
	APIKeyLookupRate int `yaml:"api_key_lookup_rate"`
	// APIKeyLookupBurst is how many such lookups may run at once above the
	// rate (default 100).
	APIKeyLookupBurst int `yaml:"api_key_lookup_burst"`
	// MaxConns is the pgx pool size (default 10).
	MaxConns int32 `yaml:"max_conns"`
	// QueryTimeout bounds each store query (default 2s).
	QueryTimeout Duration `yaml:"query_timeout"`
}

func (s *Store) applyDefaults() {
	if s.CacheTTL == 0 {
		s.CacheTTL = Duration(300 * time.Second)
	}
	if s.NegativeCacheTTL == 0 {
		s.NegativeCacheTTL = Duration(30 * time.Second)
	}
	if s.NegativeCacheSize == 0 {
		s.NegativeCacheSize = 10000
	}
	if s.APIKeyLookupRate == 0 {
		s.APIKeyLookupRate = 50
	}
	if s.APIKeyLookupBurst == 0 {
		s.APIKeyLookupBurst = 100
	}
	if s.MaxConns == 0 {
		s.MaxConns = 10
	}
	if s.QueryTimeout == 0 {
		s.QueryTimeout = Duration(2 * time.Second)
	}
}

func (s *Store) validate() []error {
	var errs []error
	if s.DatabaseURL != "" && s.TenantsFile != "" {
		errs = append(errs, errors.New("store: set either database_url or tenants_file, not both"))
	}
	if s.CacheTTL < 0 || s.NegativeCacheTTL < 0 || s.QueryTimeout < 0 {
		errs = append(errs, errors.New("store: durations must not be negative"))
	}
	if s.MaxConns < 0 {
		errs = append(errs, errors.New("store.max_conns: must not be negative"))
	}
	if s.NegativeCacheSize < 0 || s.APIKeyLookupRate < 0 || s.APIKeyLookupBurst < 0 {
		errs = append(errs, errors.New("store: negative_cache_size, api_key_lookup_rate and api_key_lookup_burst must be positive"))
	}
	return errs
}
