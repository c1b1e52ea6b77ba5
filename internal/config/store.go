package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Store selects where accounts, plans, API keys and routes are read from:
// exactly one of DatabaseURL, TenantsFile or Demo (see Kind).
type Store struct {
	// DatabaseURL is a PostgreSQL URL (env TENANTGATE_DATABASE_URL).
	DatabaseURL string `yaml:"database_url"`
	// ListenDatabaseURL is the PostgreSQL URL of the one connection that
	// LISTENs for invalidations (env TENANTGATE_LISTEN_DATABASE_URL; default:
	// database_url, which queries always use). Set it to a direct or
	// session-mode URL when database_url is a transaction-mode pooler (port
	// 6543), through which LISTEN/NOTIFY delivers nothing.
	ListenDatabaseURL string `yaml:"listen_database_url"`
	// TenantsFile is a YAML tenants file (accounts, members, tiers, API keys,
	// routes). It is re-read when it changes.
	TenantsFile string `yaml:"tenants_file"`
	// Demo serves the embedded DEMO tenants (public demo data, including a
	// public API key secret). Never in production; `serve --demo` sets it.
	Demo bool `yaml:"demo"`
	// CacheTTL bounds how long a lookup is cached in-process (default 300s).
	// Postgres changes invalidate entries sooner through LISTEN/NOTIFY.
	CacheTTL Duration `yaml:"cache_ttl"`
	// StaleIfError is how long past cache_ttl a cached answer may still be
	// served while the store is unreachable (default 1h; a negative value
	// such as -1s turns it off). Tenants never seen get 503 unavailable with
	// Retry-After; "not found" answers and entries an invalidation removed
	// are never served stale.
	StaleIfError Duration `yaml:"stale_if_error"`
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

// Store kinds, as Kind names them.
const (
	StorePostgres    = "postgres"
	StoreTenantsFile = "tenants-file"
	StoreDemo        = "demo"
)

// ErrNoStore is Kind's answer for a configuration that names no store.
var ErrNoStore = errors.New("store: no tenant store configured: set " + EnvDatabaseURL +
	" (store.database_url) or store.tenants_file, or pass --demo (store.demo: true) to serve the embedded public DEMO tenants and their public demo API key (never in production)")

// Kind names the store the configuration selects: postgres, tenants-file or
// demo. It is the one place of the rule that tenantgate never falls back to
// the demo tenants: without a database URL or tenants file it serves them
// only when asked to (--demo, store.demo), and refuses otherwise.
func (s Store) Kind() (string, error) {
	switch {
	case s.Demo && (s.DatabaseURL != "" || s.TenantsFile != ""):
		return "", errors.New("store: --demo (store.demo) serves the embedded demo tenants and cannot be combined with database_url or tenants_file")
	case s.DatabaseURL != "":
		return StorePostgres, nil
	case s.TenantsFile != "":
		return StoreTenantsFile, nil
	case s.Demo:
		return StoreDemo, nil
	default:
		return "", ErrNoStore
	}
}

// TransactionPoolerPort is the port of Supabase's transaction-mode poolers
// (Supavisor, PgBouncer), which do not support LISTEN/NOTIFY.
const TransactionPoolerPort = "6543"

// ListenURL returns the URL the invalidation listener connects to:
// ListenDatabaseURL when set, else DatabaseURL. It returns "" and an error
// explaining the consequence when that URL looks like a transaction-mode
// pooler (see LooksLikeTransactionPooler): LISTEN through it would deliver
// nothing while looking healthy, so tenantgate does not LISTEN there and
// changes, revocations included, wait out cache_ttl. The error never
// carries the URL.
func (s Store) ListenURL() (string, error) {
	u, key := s.DatabaseURL, "store.database_url"
	if s.ListenDatabaseURL != "" {
		u, key = s.ListenDatabaseURL, "store.listen_database_url"
	}
	if u == "" || !LooksLikeTransactionPooler(u) {
		return u, nil
	}
	return "", fmt.Errorf("%s looks like a transaction-mode pooler (port %s), through which LISTEN/NOTIFY delivers nothing: "+
		"not listening for invalidations, so changes and revocations take effect only when cached entries expire (store.cache_ttl %s); "+
		"set %s (store.listen_database_url) to a direct or session-mode (port 5432) connection",
		key, TransactionPoolerPort, s.CacheTTL.D(), EnvListenDatabaseURL)
}

// LooksLikeTransactionPooler reports whether a PostgreSQL connection string
// (URL or keyword/value form) names port 6543 for any of its hosts, the
// port of Supabase's transaction-mode poolers (Supavisor at
// *.pooler.supabase.com:6543, PgBouncer). A pooler in transaction mode on
// another port cannot be recognised from the URL.
func LooksLikeTransactionPooler(connString string) bool {
	for _, p := range connPorts(connString) {
		if p == TransactionPoolerPort {
			return true
		}
	}
	return false
}

// connPorts lists the explicit ports of a connection string.
func connPorts(s string) []string {
	s = strings.TrimSpace(s)
	var ports []string
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return nil
		}
		for _, h := range strings.Split(u.Host, ",") {
			if _, p, err := net.SplitHostPort(h); err == nil {
				ports = append(ports, p)
			}
		}
		for _, p := range u.Query()["port"] {
			ports = append(ports, strings.Split(p, ",")...)
		}
		return ports
	}
	for strings.Contains(s, " =") || strings.Contains(s, "= ") {
		s = strings.ReplaceAll(strings.ReplaceAll(s, " =", "="), "= ", "=")
	}
	for _, f := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(f, "port="); ok {
			ports = append(ports, strings.Split(strings.Trim(v, `'`), ",")...)
		}
	}
	return ports
}

func (s *Store) applyDefaults() {
	if s.CacheTTL == 0 {
		s.CacheTTL = Duration(300 * time.Second)
	}
	if s.StaleIfError == 0 {
		s.StaleIfError = Duration(time.Hour)
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
	if s.ListenDatabaseURL != "" && s.DatabaseURL == "" {
		errs = append(errs, errors.New("store.listen_database_url: only used with database_url"))
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
