package pgstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/tenant"
	"github.com/tenantgate/tenantgate/internal/testpg"
	"github.com/tenantgate/tenantgate/migrations"
)

const (
	alice    = "11111111-1111-4111-8111-111111111111"
	bob      = "22222222-2222-4222-8222-222222222222"
	carol    = "33333333-3333-4333-8333-333333333333"
	nobody   = "99999999-9999-4999-8999-999999999999"
	acme     = "a0000000-0000-4000-8000-000000000001"
	aliceAcc = "a0000000-0000-4000-8000-000000000011"
	bobAcc   = "a0000000-0000-4000-8000-000000000022"
	carolAcc = "a0000000-0000-4000-8000-000000000033"
	keyID    = "c0000000-0000-4000-8000-000000000001"
	revKeyID = "c0000000-0000-4000-8000-000000000002"
	pk       = "pk_demoAcmePublicKey000000000000000"
	pkRev    = "pk_revokedKey00000000000000000000"
	hash     = "0276f6718bbc05ba14a22861009cfe7a8a53b9157f32e59daf2b6162d80f24da"
	roleARN  = "arn:aws:iam::111122223333:role/AcmeBedrockAccess"
)

// Seed is the demo tenants as SQL; carol's account has an enterprise tier
// but no route, bob's personal account has no credit_accounts row.
const seed = `
INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account) VALUES
  ('` + aliceAcc + `', '` + alice + `', 'Alice', 'alice', true),
  ('` + bobAcc + `', '` + bob + `', 'Bob', 'bob', true),
  ('` + carolAcc + `', '` + carol + `', 'Carol', NULL, true),
  ('` + acme + `', '` + alice + `', 'Acme Corp', 'acme', false);
INSERT INTO basejump.account_user (user_id, account_id, account_role) VALUES
  ('` + alice + `', '` + aliceAcc + `', 'owner'),
  ('` + bob + `', '` + bobAcc + `', 'owner'),
  ('` + carol + `', '` + carolAcc + `', 'owner'),
  ('` + alice + `', '` + acme + `', 'owner'),
  ('` + bob + `', '` + acme + `', 'member');
INSERT INTO public.credit_accounts (account_id, tier, trial_status, balance) VALUES
  ('` + aliceAcc + `', 'free', NULL, NULL),
  ('` + carolAcc + `', 'tier_125_800', 'active', 12.5),
  ('` + acme + `', 'tier_200_1000', NULL, 100);
INSERT INTO public.api_keys (key_id, public_key, secret_key_hash, account_id, title, status, expires_at) VALUES
  ('` + keyID + `', '` + pk + `', '` + hash + `', '` + acme + `', 'Acme demo key', 'active', NULL),
  ('` + revKeyID + `', '` + pkRev + `', '` + hash + `', '` + acme + `', NULL, 'revoked', '2030-01-02T03:04:05Z');
INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id, region) VALUES
  ('` + acme + `', '` + roleARN + `', 'acme-external-id-7f3c', 'eu-west-1');
`

// newDB returns a migrated, seeded database.
func newDB(t *testing.T) string {
	t.Helper()
	url := testpg.Start(t)
	ctx := context.Background()
	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	exec(t, url, seed)
	return url
}

func exec(t *testing.T, url, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %.80q: %v", sql, err)
	}
}

func execErr(t *testing.T, url, sql string) error {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{MaxConns: 4, QueryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestMigrate(t *testing.T) {
	url := testpg.Start(t)
	ctx := context.Background()

	err := Migrate(ctx, url, false, nil)
	if err == nil || !strings.Contains(err.Error(), "basejump") || !strings.Contains(err.Error(), "hint") {
		t.Fatalf("core without basejump: %v; want an error naming basejump with a hint", err)
	}
	for i := 0; i < 2; i++ {
		if err := Migrate(ctx, url, true, nil); err != nil {
			t.Fatalf("migrate run %d: %v", i+1, err)
		}
	}
	// The SQL itself is idempotent: forget the bookkeeping and apply again,
	// as on a database where the objects already exist.
	exec(t, url, `DELETE FROM tenantgate.schema_migrations`)
	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("re-apply: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM tenantgate.schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := len(migrations.Dev()) + len(migrations.Core()); n != want {
		t.Errorf("%d recorded migrations, want %d", n, want)
	}
	// Core alone now succeeds, basejump being present.
	if err := Migrate(ctx, url, false, nil); err != nil {
		t.Fatalf("core on existing basejump: %v", err)
	}

	exec(t, url, `INSERT INTO basejump.accounts (id, primary_owner_user_id) VALUES ('`+acme+`', '`+alice+`')`)
	checks := []struct {
		name, sql string
		ok        bool
	}{
		{"no external id", `INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, region) VALUES ('` + acme + `', '` + roleARN + `', 'us-east-1')`, false},
		{"valid route", `INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id, region) VALUES ('` + acme + `', '` + roleARN + `', 'acme-ext', 'us-east-1')`, true},
		{"external id removed", `UPDATE tenantgate.enterprise_bedrock_routing SET bedrock_external_id = NULL`, false},
		{"external id empty", `UPDATE tenantgate.enterprise_bedrock_routing SET bedrock_external_id = ''`, false},
		{"bad arn", `UPDATE tenantgate.enterprise_bedrock_routing SET bedrock_role_arn = 'arn:aws:iam::1:user/x'`, false},
		{"bad region", `UPDATE tenantgate.enterprise_bedrock_routing SET region = 'Mars'`, false},
		{"bad external id", `UPDATE tenantgate.enterprise_bedrock_routing SET bedrock_external_id = 'has space'`, false},
		{"null region", `UPDATE tenantgate.enterprise_bedrock_routing SET region = NULL`, true},
		{"unknown account", `INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id) VALUES ('` + nobody + `', '` + roleARN + `', 'acme-ext')`, false},
		{"bad key status", `INSERT INTO public.api_keys (public_key, secret_key_hash, status) VALUES ('pk_x', 'h', 'paused')`, false},
	}
	for _, c := range checks {
		err := execErr(t, url, c.sql)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	var before, after time.Time
	if err := conn.QueryRow(ctx, `SELECT updated_at FROM tenantgate.enterprise_bedrock_routing`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	exec(t, url, `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = false`)
	if err := conn.QueryRow(ctx, `SELECT updated_at FROM tenantgate.enterprise_bedrock_routing`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !after.After(before) {
		t.Errorf("updated_at not advanced by trigger: %v -> %v", before, after)
	}
	// Deleting the account cascades to its route.
	exec(t, url, `DELETE FROM basejump.accounts WHERE id = '`+acme+`'`)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM tenantgate.enterprise_bedrock_routing`).Scan(&n); err != nil || n != 0 {
		t.Errorf("route rows after account delete: %d %v", n, err)
	}
}

func TestLookups(t *testing.T) {
	url := newDB(t)
	s := openStore(t, url)
	ctx := context.Background()

	t.Run("personal account", func(t *testing.T) {
		for _, tc := range []struct{ user, want, name string }{{alice, aliceAcc, "Alice"}, {bob, bobAcc, "Bob"}, {carol, carolAcc, "Carol"}} {
			a, err := s.PersonalAccount(ctx, tc.user)
			if err != nil || a.ID != tc.want || !a.Personal || a.Name != tc.name || a.PrimaryOwnerUserID != tc.user {
				t.Errorf("PersonalAccount(%s) = %+v, %v", tc.user, a, err)
			}
		}
		// Upper-case input is the same uuid.
		if a, err := s.PersonalAccount(ctx, strings.ToUpper(alice)); err != nil || a.ID != aliceAcc {
			t.Errorf("upper-case user: %+v %v", a, err)
		}
		if _, err := s.PersonalAccount(ctx, nobody); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("unknown user: %v", err)
		}
	})
	t.Run("account", func(t *testing.T) {
		a, err := s.Account(ctx, acme)
		if err != nil || a.Personal || a.Name != "Acme Corp" || a.Slug != "acme" || a.PrimaryOwnerUserID != alice {
			t.Errorf("Account(acme) = %+v %v", a, err)
		}
		if a, err := s.Account(ctx, carolAcc); err != nil || a.Slug != "" {
			t.Errorf("NULL slug: %+v %v", a, err)
		}
		if _, err := s.Account(ctx, nobody); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("unknown account: %v", err)
		}
	})
	t.Run("membership", func(t *testing.T) {
		tests := []struct {
			account, user string
			want          tenant.Role
			err           error
		}{
			{acme, alice, tenant.RoleOwner, nil},
			{acme, bob, tenant.RoleMember, nil},
			{acme, carol, "", tenant.ErrNotFound},
			{aliceAcc, bob, "", tenant.ErrNotFound},
			{nobody, alice, "", tenant.ErrNotFound},
		}
		for _, tc := range tests {
			r, err := s.Membership(ctx, tc.account, tc.user)
			if r != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("Membership(%s, %s) = %q, %v; want %q, %v", tc.account, tc.user, r, err, tc.want, tc.err)
			}
		}
	})
	t.Run("plan", func(t *testing.T) {
		p, err := s.Plan(ctx, carolAcc)
		if err != nil || p.Tier != "tier_125_800" || p.TrialStatus != "active" || p.Balance == nil || *p.Balance != 12.5 {
			t.Errorf("Plan(carol) = %+v %v", p, err)
		}
		p, err = s.Plan(ctx, aliceAcc)
		if err != nil || p.Tier != "free" || p.Balance != nil {
			t.Errorf("Plan(alice) = %+v %v", p, err)
		}
		p, err = s.Plan(ctx, bobAcc) // no row
		if err != nil || p.Tier != tenant.NoTier || p.Balance != nil {
			t.Errorf("Plan(bob, no row) = %+v %v", p, err)
		}
	})
	t.Run("api key", func(t *testing.T) {
		k, err := s.APIKeyByPublic(ctx, pk)
		if err != nil || k.KeyID != keyID || k.SecretKeyHash != hash || k.AccountID != acme || k.Status != tenant.KeyActive || k.Title != "Acme demo key" || k.ExpiresAt != nil || k.LastUsedAt != nil {
			t.Errorf("APIKeyByPublic = %+v %v", k, err)
		}
		k, err = s.APIKeyByPublic(ctx, pkRev)
		if err != nil || k.Status != tenant.KeyRevoked || k.ExpiresAt == nil || k.ExpiresAt.Year() != 2030 {
			t.Errorf("revoked key = %+v %v", k, err)
		}
		if _, err := s.APIKeyByPublic(ctx, "pk_unknown"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("unknown key: %v", err)
		}
	})
	t.Run("routes", func(t *testing.T) {
		r, err := s.Route(ctx, acme)
		if err != nil || r.RoleARN != roleARN || r.ExternalID != "acme-external-id-7f3c" || r.Region != "eu-west-1" || !r.Enabled || r.UpdatedAt.IsZero() {
			t.Errorf("Route(acme) = %+v %v", r, err)
		}
		if _, err := s.Route(ctx, carolAcc); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Route(carol): %v", err)
		}
		rs, err := s.Routes(ctx)
		if err != nil || len(rs) != 1 || rs[0].AccountID != acme {
			t.Errorf("Routes = %+v %v", rs, err)
		}
		exec(t, url, `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = false`)
		r, err = s.Route(ctx, acme)
		if err != nil || r.Enabled {
			t.Errorf("disabled route = %+v %v", r, err)
		}
		if rs, err := s.Routes(ctx); err != nil || len(rs) != 0 {
			t.Errorf("Routes with the only route disabled = %+v %v", rs, err)
		}
		exec(t, url, `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = true`)
		// inference_profiles: NULL maps nothing; an object is read as the
		// model id -> application inference profile map.
		if r.InferenceProfiles != nil {
			t.Errorf("NULL inference_profiles = %v", r.InferenceProfiles)
		}
		const prof = "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1b2c3d4e5f6"
		exec(t, url, `UPDATE tenantgate.enterprise_bedrock_routing SET inference_profiles = jsonb_build_object('anthropic.claude-3-haiku-20240307-v1:0', $1::text)`, prof)
		if r, err := s.Route(ctx, acme); err != nil || len(r.InferenceProfiles) != 1 || r.InferenceProfiles["anthropic.claude-3-haiku-20240307-v1:0"] != prof {
			t.Errorf("route with inference_profiles = %+v %v", r, err)
		}
		if err := execErr(t, url, `UPDATE tenantgate.enterprise_bedrock_routing SET inference_profiles = '["x"]'`); err == nil {
			t.Error("a non-object inference_profiles was accepted")
		}
		exec(t, url, `UPDATE tenantgate.enterprise_bedrock_routing SET inference_profiles = NULL`)
	})
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestBadInputIsNotFound(t *testing.T) {
	url := newDB(t)
	s := openStore(t, url)
	ctx := context.Background()
	bad := []string{"", "x", "not-a-uuid", "' OR '1'='1", acme + "0", "{" + acme + "}", "a\x00b", "\xff\xfe", strings.Repeat("9", 5000)}
	for _, in := range bad {
		if _, err := s.PersonalAccount(ctx, in); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("PersonalAccount(%q): %v", in, err)
		}
		if _, err := s.Account(ctx, in); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Account(%q): %v", in, err)
		}
		if _, err := s.Membership(ctx, in, alice); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Membership(%q, alice): %v", in, err)
		}
		if _, err := s.Membership(ctx, acme, in); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Membership(acme, %q): %v", in, err)
		}
		if p, err := s.Plan(ctx, in); err != nil || p.Tier != tenant.NoTier {
			t.Errorf("Plan(%q) = %+v %v", in, p, err)
		}
		if _, err := s.APIKeyByPublic(ctx, in); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("APIKeyByPublic(%q): %v", in, err)
		}
		if _, err := s.Route(ctx, in); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Route(%q): %v", in, err)
		}
		if err := s.TouchAPIKeys(ctx, []string{in}, time.Now()); err != nil {
			t.Errorf("TouchAPIKeys(%q): %v", in, err)
		}
	}
}

func TestTouchAPIKeys(t *testing.T) {
	url := newDB(t)
	s := openStore(t, url)
	ctx := context.Background()
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := s.TouchAPIKeys(ctx, nil, at); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	if err := s.TouchAPIKeys(ctx, []string{keyID, revKeyID, "junk", nobody}, at); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pk, pkRev} {
		k, err := s.APIKeyByPublic(ctx, p)
		if err != nil || k.LastUsedAt == nil || !k.LastUsedAt.Equal(at) {
			t.Fatalf("%s last_used_at = %v, %v; want %v", p, k.LastUsedAt, err, at)
		}
	}
	// An older batch does not move last_used_at back.
	if err := s.TouchAPIKeys(ctx, []string{keyID}, at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if k, _ := s.APIKeyByPublic(ctx, pk); !k.LastUsedAt.Equal(at) {
		t.Fatalf("last_used_at moved back to %v", k.LastUsedAt)
	}
	later := at.Add(time.Minute)
	if err := s.TouchAPIKeys(ctx, []string{keyID}, later); err != nil {
		t.Fatal(err)
	}
	if k, _ := s.APIKeyByPublic(ctx, pk); !k.LastUsedAt.Equal(later) {
		t.Fatalf("last_used_at = %v, want %v", k.LastUsedAt, later)
	}
}

func TestUnavailableIsNotNotFound(t *testing.T) {
	url := newDB(t)
	s, err := Open(context.Background(), url, Options{QueryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ctx := context.Background()
	if _, err := s.Account(ctx, acme); err == nil || errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("closed store Account: %v, want an outage error", err)
	}
	if _, err := s.Plan(ctx, acme); err == nil || errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("closed store Plan: %v, want an outage error", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("closed store Ping succeeded")
	}
	if _, err := Open(ctx, "postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=1", Options{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("open unreachable: %v (must fail without echoing the password)", err)
	}
	if _, err := Open(ctx, "::not a url::", Options{}); err == nil {
		t.Error("invalid URL accepted")
	}
}

type recorder struct {
	mu        sync.Mutex
	events    []Event
	resets    int
	listening int
}

func (r *recorder) snapshot() ([]Event, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...), r.resets, r.listening
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestListener(t *testing.T) {
	url := newDB(t)
	rec := &recorder{}
	l, err := StartListener(context.Background(), url, ListenerOptions{
		OnEvent:     func(ev Event) { rec.mu.Lock(); rec.events = append(rec.events, ev); rec.mu.Unlock() },
		OnReset:     func() { rec.mu.Lock(); rec.resets++; rec.mu.Unlock() },
		OnListening: func() { rec.mu.Lock(); rec.listening++; rec.mu.Unlock() },
		MinBackoff:  20 * time.Millisecond,
		MaxBackoff:  200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	select {
	case <-l.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("listener not ready")
	}
	waitFor(t, "LISTEN", func() bool { _, _, n := rec.snapshot(); return n == 1 })

	has := func(want Event) func() bool {
		return func() bool {
			evs, _, _ := rec.snapshot()
			for _, ev := range evs {
				if ev == want {
					return true
				}
			}
			return false
		}
	}
	changes := []struct {
		sql  string
		want Event
	}{
		{`UPDATE public.credit_accounts SET tier = 'free' WHERE account_id = '` + acme + `'`, Event{Table: "credit_accounts", AccountID: acme}},
		{`UPDATE tenantgate.enterprise_bedrock_routing SET enabled = false WHERE account_id = '` + acme + `'`, Event{Table: "enterprise_bedrock_routing", AccountID: acme}},
		{`DELETE FROM basejump.account_user WHERE account_id = '` + acme + `' AND user_id = '` + bob + `'`, Event{Table: "account_user", AccountID: acme, UserID: bob}},
		{`UPDATE basejump.accounts SET name = 'Acme Inc' WHERE id = '` + acme + `'`, Event{Table: "accounts", AccountID: acme, UserID: alice}},
		{`UPDATE public.api_keys SET status = 'revoked' WHERE key_id = '` + keyID + `'`, Event{Table: "api_keys", AccountID: acme, PublicKey: pk}},
		{`TRUNCATE public.credit_accounts`, Event{Table: "credit_accounts", All: true}},
	}
	for _, c := range changes {
		exec(t, url, c.sql)
		waitFor(t, "event for "+c.sql, has(c.want))
	}

	// last_used_at-only updates are tenantgate's own writes: no event.
	evs, _, _ := rec.snapshot()
	before := len(evs)
	exec(t, url, `UPDATE public.api_keys SET last_used_at = now()`)
	exec(t, url, `UPDATE public.credit_accounts SET tier = tier`) // marker: empty table after TRUNCATE, no event
	exec(t, url, `INSERT INTO public.credit_accounts (account_id, tier) VALUES ('`+bobAcc+`', 'free')`)
	waitFor(t, "marker event", has(Event{Table: "credit_accounts", AccountID: bobAcc}))
	evs, _, _ = rec.snapshot()
	for _, ev := range evs[before:] {
		if ev.Table == "api_keys" {
			t.Errorf("last_used_at update produced %+v", ev)
		}
	}

	// Losing the connection resets the cache and reconnects.
	_, resetsBefore, _ := rec.snapshot()
	exec(t, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tenantgate-listener'`)
	waitFor(t, "reconnect", func() bool { _, r, n := rec.snapshot(); return n == 2 && r >= resetsBefore+2 })
	exec(t, url, `UPDATE public.credit_accounts SET tier = 'tier_150_1200' WHERE account_id = '`+bobAcc+`'`)
	waitFor(t, "event after reconnect", func() bool {
		evs, _, _ := rec.snapshot()
		n := 0
		for _, ev := range evs {
			if ev == (Event{Table: "credit_accounts", AccountID: bobAcc}) {
				n++
			}
		}
		return n >= 2
	})
}

func TestParsePayload(t *testing.T) {
	tests := []struct {
		in      string
		want    Event
		wantErr bool
	}{
		{`{"table":"credit_accounts","account_id":"` + acme + `"}`, Event{Table: "credit_accounts", AccountID: acme}, false},
		{`{"table":"api_keys","account_id":"` + acme + `","public_key":"` + pk + `"}`, Event{Table: "api_keys", AccountID: acme, PublicKey: pk}, false},
		{`{"table":"accounts","account_id":"junk","user_id":"` + alice + `"}`, Event{Table: "accounts", UserID: alice}, false},
		{`{"table":"credit_accounts","all":true}`, Event{Table: "credit_accounts", All: true}, false},
		{`{"account_id":"` + acme + `"}`, Event{}, true},
		{`not json`, Event{}, true},
		{strings.Repeat(" ", 9000), Event{}, true},
	}
	for _, tc := range tests {
		got, err := ParsePayload(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParsePayload(%.40q) = %+v, %v; want %+v, err=%v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add(`{"table":"credit_accounts","account_id":"` + acme + `"}`)
	f.Add(`{"table":"api_keys","public_key":"pk_x"}`)
	f.Add(`{}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, payload string) {
		ev, err := ParsePayload(payload)
		if err != nil {
			if ev != (Event{}) {
				t.Fatalf("error with event %+v", ev)
			}
			return
		}
		if ev.Table == "" {
			t.Fatal("event without table")
		}
		if ev.AccountID != "" && len(ev.AccountID) != 36 {
			t.Fatalf("malformed account id kept: %q", ev.AccountID)
		}
	})
}

func TestTiers(t *testing.T) {
	url := newDB(t)
	s := openStore(t, url)
	ctx := context.Background()
	// bob's personal account has no credit_accounts row: it counts as "none".
	got, err := s.Tiers(ctx)
	if err != nil {
		t.Fatalf("Tiers: %v", err)
	}
	want := []string{"free", tenant.NoTier, "tier_125_800", "tier_200_1000"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Tiers = %q, want %q", got, want)
	}

	// Every account has a row; an empty tier is "none" too, and a tier is
	// listed once however many accounts have it.
	exec(t, url, `INSERT INTO public.credit_accounts (account_id, tier) VALUES ($1::uuid, 'free')`, bobAcc)
	got, err = s.Tiers(ctx)
	if err != nil {
		t.Fatalf("Tiers: %v", err)
	}
	want = []string{"free", "tier_125_800", "tier_200_1000"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Tiers with every account planned = %q, want %q", got, want)
	}
	exec(t, url, `UPDATE public.credit_accounts SET tier = '' WHERE account_id = $1::uuid`, bobAcc)
	got, err = s.Tiers(ctx)
	if err != nil {
		t.Fatalf("Tiers: %v", err)
	}
	want = []string{"free", tenant.NoTier, "tier_125_800", "tier_200_1000"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Tiers with an empty tier = %q, want %q", got, want)
	}
}
