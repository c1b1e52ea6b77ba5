package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/tenant"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

const (
	alice = filestore.DemoAliceUserID
	bob   = filestore.DemoBobUserID
	acme  = filestore.DemoAcmeAccountID
)

func storeConfig() config.Store {
	return config.Store{
		CacheTTL:         config.Duration(5 * time.Minute),
		NegativeCacheTTL: config.Duration(time.Minute),
		MaxConns:         4,
		QueryTimeout:     config.Duration(5 * time.Second),
	}
}

// Without a database URL, a tenants file or Demo, Open refuses instead of
// serving the public demo tenants.
func TestOpenRefusesWithoutStore(t *testing.T) {
	s, err := Open(context.Background(), storeConfig(), nil, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open served the embedded demo tenants without Demo")
	}
	if !errors.Is(err, config.ErrNoStore) {
		t.Fatalf("err = %v, want config.ErrNoStore", err)
	}
}

func TestOpenEmbeddedDemo(t *testing.T) {
	cfg := storeConfig()
	cfg.Demo = true
	s, err := Open(context.Background(), cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	a, err := s.PersonalAccount(ctx, bob)
	if err != nil || a.ID != filestore.DemoBobAccountID {
		t.Fatalf("bob's personal account: %+v %v", a, err)
	}
	if r, err := s.Membership(ctx, acme, bob); err != nil || r != tenant.RoleMember {
		t.Fatalf("bob in acme: %q %v", r, err)
	}
	if r, err := s.Route(ctx, acme); err != nil || r.RoleARN != filestore.DemoAcmeRoleARN {
		t.Fatalf("acme route: %+v %v", r, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenTenantsFileReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(path, filestore.DefaultTenants, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := storeConfig()
	cfg.TenantsFile = path
	s, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Cached for five minutes unless the reload flushes the cache.
	if r, err := s.Route(ctx, acme); err != nil || !r.Enabled {
		t.Fatalf("route: %+v %v", r, err)
	}
	changed := strings.Replace(string(filestore.DefaultTenants), "      enabled: true", "      enabled: false", 1)
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "disabled route from reloaded file", func() bool {
		r, err := s.Route(ctx, acme)
		return err == nil && !r.Enabled
	})
	if rs, err := s.Routes(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("routes after disable: %+v %v", rs, err)
	}
}

func TestOpenErrors(t *testing.T) {
	cfg := storeConfig()
	cfg.TenantsFile = filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := Open(context.Background(), cfg, nil, nil); err == nil {
		t.Fatal("missing tenants file accepted")
	}
	cfg = storeConfig()
	cfg.DatabaseURL = "postgres://tenantgate:s3cr3t@127.0.0.1:1/db?connect_timeout=1"
	_, err := Open(context.Background(), cfg, nil, nil)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("unreachable database: %v (must fail without the password)", err)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not observed within %v", what, within)
	return 0
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("exec %.80q: %v", sql, err)
	}
}

const seed = `
INSERT INTO basejump.accounts (id, primary_owner_user_id, name, personal_account) VALUES
  ('` + filestore.DemoBobAccountID + `', '` + bob + `', 'Bob', true),
  ('` + acme + `', '` + alice + `', 'Acme Corp', false);
INSERT INTO basejump.account_user (user_id, account_id, account_role) VALUES
  ('` + alice + `', '` + acme + `', 'owner'), ('` + bob + `', '` + acme + `', 'member');
INSERT INTO public.credit_accounts (account_id, tier) VALUES ('` + acme + `', 'tier_200_1000');
INSERT INTO public.api_keys (key_id, public_key, secret_key_hash, account_id) VALUES
  ('` + filestore.DemoAPIKeyID + `', '` + filestore.DemoAPIKeyPublic + `', '0276f6718bbc05ba14a22861009cfe7a8a53b9157f32e59daf2b6162d80f24da', '` + acme + `');
INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id, region) VALUES
  ('` + acme + `', '` + filestore.DemoAcmeRoleARN + `', 'acme-external-id-7f3c', 'eu-west-1');
`

// TestPostgresInvalidation: with a five-minute cache TTL, changes made in
// the database are visible through the store within one second.
func TestPostgresInvalidation(t *testing.T) {
	url := testpg.Start(t)
	ctx := context.Background()
	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	exec(t, url, seed)
	cfg := storeConfig()
	cfg.DatabaseURL = url
	reg := prometheus.NewRegistry()
	s, err := Open(ctx, cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Warm the cache (including negative entries).
	if p, err := s.Plan(ctx, acme); err != nil || p.Tier != "tier_200_1000" {
		t.Fatalf("plan: %+v %v", p, err)
	}
	if r, err := s.Route(ctx, acme); err != nil || !r.Enabled {
		t.Fatalf("route: %+v %v", r, err)
	}
	if rs, err := s.Routes(ctx); err != nil || len(rs) != 1 {
		t.Fatalf("routes: %+v %v", rs, err)
	}
	carol := filestore.DemoCarolUserID
	if _, err := s.PersonalAccount(ctx, carol); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("carol: %v", err)
	}
	if _, err := s.Membership(ctx, acme, bob); err != nil {
		t.Fatal(err)
	}
	if k, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic); err != nil || k.Status != tenant.KeyActive {
		t.Fatalf("key: %+v %v", k, err)
	}
	// Control: the store does cache. A change made with the NOTIFY trigger
	// disabled stays invisible for the cache TTL.
	exec(t, url, `ALTER TABLE public.credit_accounts DISABLE TRIGGER tenantgate_invalidate;
		UPDATE public.credit_accounts SET tier = 'silent' WHERE account_id = '`+acme+`';
		ALTER TABLE public.credit_accounts ENABLE TRIGGER tenantgate_invalidate`)
	time.Sleep(300 * time.Millisecond)
	if p, err := s.Plan(ctx, acme); err != nil || p.Tier != "tier_200_1000" {
		t.Fatalf("plan without notification = %+v %v; want the cached tier_200_1000", p, err)
	}

	changes := []struct {
		name  string
		sql   string
		check func() bool
	}{
		{"tier change", `UPDATE public.credit_accounts SET tier = 'free' WHERE account_id = '` + acme + `'`,
			func() bool { p, err := s.Plan(ctx, acme); return err == nil && p.Tier == "free" }},
		{"route disabled", `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = false WHERE account_id = '` + acme + `'`,
			func() bool {
				r, err := s.Route(ctx, acme)
				rs, err2 := s.Routes(ctx)
				return err == nil && !r.Enabled && err2 == nil && len(rs) == 0
			}},
		{"route deleted", `DELETE FROM tenantgate.enterprise_bedrock_routing WHERE account_id = '` + acme + `'`,
			func() bool { _, err := s.Route(ctx, acme); return errors.Is(err, tenant.ErrNotFound) }},
		{"member removed", `DELETE FROM basejump.account_user WHERE account_id = '` + acme + `' AND user_id = '` + bob + `'`,
			func() bool { _, err := s.Membership(ctx, acme, bob); return errors.Is(err, tenant.ErrNotFound) }},
		{"key revoked", `UPDATE public.api_keys SET status = 'revoked'`,
			func() bool {
				k, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic)
				return err == nil && k.Status == tenant.KeyRevoked
			}},
		{"personal account created (negative entry dropped)", `INSERT INTO basejump.accounts (id, primary_owner_user_id, name, personal_account) VALUES ('` + filestore.DemoCarolAccountID + `', '` + carol + `', 'Carol', true)`,
			func() bool {
				a, err := s.PersonalAccount(ctx, carol)
				return err == nil && a.ID == filestore.DemoCarolAccountID
			}},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			exec(t, url, c.sql)
			d := waitFor(t, time.Second, c.name, c.check)
			t.Logf("%s visible after %v", c.name, d)
		})
	}

	// Losing the LISTEN connection: changes made meanwhile are still seen,
	// because the cache is flushed on reconnect.
	if p, err := s.Plan(ctx, acme); err != nil || p.Tier != "free" {
		t.Fatalf("plan: %+v %v", p, err)
	}
	exec(t, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tenantgate-listener'`)
	exec(t, url, `UPDATE public.credit_accounts SET tier = 'tier_150_1200' WHERE account_id = '`+acme+`'`)
	waitFor(t, 3*time.Second, "tier after listener reconnect", func() bool {
		p, err := s.Plan(ctx, acme)
		return err == nil && p.Tier == "tier_150_1200"
	})

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"tenantgate_store_cache_hits_total", "tenantgate_store_cache_misses_total", "tenantgate_store_cache_invalidations_total", "tenantgate_store_query_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not exported", n)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
