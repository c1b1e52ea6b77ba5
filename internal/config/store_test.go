package config

import (
	"strings"
	"testing"
	"time"
)

func TestStoreKind(t *testing.T) {
	tests := []struct {
		name    string
		store   Store
		want    string
		wantErr string
	}{
		{"database", Store{DatabaseURL: "postgres://u:p@h/db"}, StorePostgres, ""},
		{"tenants file", Store{TenantsFile: "/etc/t.yaml"}, StoreTenantsFile, ""},
		{"demo", Store{Demo: true}, StoreDemo, ""},
		{"nothing", Store{}, "", "no tenant store configured"},
		{"demo with database", Store{Demo: true, DatabaseURL: "postgres://u:p@h/db"}, "", "cannot be combined"},
		{"demo with tenants file", Store{Demo: true, TenantsFile: "/etc/t.yaml"}, "", "cannot be combined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.store.Kind()
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Kind() = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != "" {
				t.Fatalf("Kind() = %q, %v; want an error containing %q", got, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "p@h") {
				t.Errorf("error carries the URL: %v", err)
			}
		})
	}
	// The refusal names every way out.
	for _, want := range []string{EnvDatabaseURL, "store.database_url", "store.tenants_file", "--demo", "store.demo"} {
		if !strings.Contains(ErrNoStore.Error(), want) {
			t.Errorf("ErrNoStore does not mention %s: %v", want, ErrNoStore)
		}
	}
}

func TestLooksLikeTransactionPooler(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		// Supabase: Supavisor transaction mode, session mode, direct.
		{"postgres://postgres.abcdefghijklmnop:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres", true},
		{"postgresql://postgres.abcdefghijklmnop:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres?sslmode=require", true},
		{"postgres://postgres.abcdefghijklmnop:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres", false},
		{"postgres://postgres:pw@db.abcdefghijklmnop.supabase.co:5432/postgres", false},
		// Dedicated PgBouncer on 6543, any host.
		{"postgres://u:pw@db.abcdefghijklmnop.supabase.co:6543/postgres", true},
		{"postgres://u:pw@10.0.0.5:6543/app", true},
		{"postgres://u:pw@[::1]:6543/app", true},
		// Multiple hosts, and the port as a query parameter.
		{"postgres://u:pw@a:5432,b:6543/app", true},
		{"postgres://u:pw@a/app?port=6543", true},
		// Keyword/value form.
		{"host=aws-0-eu-central-1.pooler.supabase.com port=6543 user=postgres.ref dbname=postgres", true},
		{"host=db port='6543' dbname=app", true},
		{"host=db port = 6543 dbname=app", true},
		{"host=db dbname=app6543", false},
		{"host=db port=5432 dbname=app", false},
		// Default port, other ports, not a URL.
		{"postgres://u:pw@db/app", false},
		{"postgres://u:pw@db:65432/app", false},
		{"postgres://u:pw@db:16543/app", false},
		{"", false},
		{"::not a url", false},
	}
	for _, tt := range tests {
		if got := LooksLikeTransactionPooler(tt.url); got != tt.want {
			t.Errorf("LooksLikeTransactionPooler(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestStoreListenURL(t *testing.T) {
	const (
		pooler = "postgres://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"
		direct = "postgres://postgres:pw@db.ref.supabase.co:5432/postgres"
	)
	tests := []struct {
		name        string
		store       Store
		want        string
		wantErr     string
		errNotWords []string
	}{
		{name: "direct database", store: Store{DatabaseURL: direct}, want: direct},
		{name: "pooler without listen url", store: Store{DatabaseURL: pooler, CacheTTL: Duration(5 * time.Minute)},
			wantErr: "store.database_url looks like a transaction-mode pooler (port 6543), through which LISTEN/NOTIFY delivers nothing: not listening for invalidations, so changes and revocations take effect only when cached entries expire (store.cache_ttl 5m0s); set TENANTGATE_LISTEN_DATABASE_URL (store.listen_database_url)"},
		{name: "pooler with listen url", store: Store{DatabaseURL: pooler, ListenDatabaseURL: direct}, want: direct},
		{name: "listen url is a pooler too", store: Store{DatabaseURL: pooler, ListenDatabaseURL: pooler},
			wantErr: "store.listen_database_url looks like a transaction-mode pooler"},
		{name: "no database", store: Store{TenantsFile: "/t.yaml"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.store.ListenURL()
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ListenURL() = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || got != "" || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ListenURL() = %q, %v; want an error containing %q", got, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), "pooler.supabase.com") {
				t.Errorf("error carries the URL: %v", err)
			}
		})
	}
}

func TestListenDatabaseURLConfig(t *testing.T) {
	const listen = "postgres://listener:pw@direct:5432/app"
	c, err := Parse([]byte("store:\n  database_url: postgres://u:pw@pooler:6543/app\n"), env(map[string]string{EnvListenDatabaseURL: listen}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.ListenDatabaseURL != listen {
		t.Errorf("listen_database_url = %q, want the environment's", c.Store.ListenDatabaseURL)
	}
	c, err = Parse([]byte("store:\n  database_url: postgres://u:pw@pooler:6543/app\n  listen_database_url: "+listen+"\n  demo: false\n"), nil)
	if err != nil || c.Store.ListenDatabaseURL != listen {
		t.Fatalf("from the file: %q %v", c.Store.ListenDatabaseURL, err)
	}
	_, err = Parse([]byte("store:\n  tenants_file: /t.yaml\n  listen_database_url: "+listen+"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "store.listen_database_url: only used with database_url") {
		t.Fatalf("listen_database_url without database_url: %v", err)
	}
}
