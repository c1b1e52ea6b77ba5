package filestore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

func TestDefaultTenantsDemoData(t *testing.T) {
	s, err := Load(DefaultTenants)
	if err != nil {
		t.Fatalf("embedded default tenants do not load: %v", err)
	}
	ctx := context.Background()

	personal := []struct {
		user, account, name, tier string
	}{
		{DemoAliceUserID, DemoAliceAccountID, "Alice", "free"},
		{DemoBobUserID, DemoBobAccountID, "Bob", "free"},
		{DemoCarolUserID, DemoCarolAccountID, "Carol", "tier_125_800"},
	}
	for _, p := range personal {
		a, err := s.PersonalAccount(ctx, p.user)
		if err != nil {
			t.Fatalf("personal account of %s: %v", p.user, err)
		}
		if a.ID != p.account || a.Name != p.name || !a.Personal || a.PrimaryOwnerUserID != p.user {
			t.Errorf("personal account of %s = %+v", p.user, a)
		}
		plan, err := s.Plan(ctx, p.account)
		if err != nil || plan.Tier != p.tier {
			t.Errorf("plan of %s = %+v, %v; want tier %s", p.account, plan, err, p.tier)
		}
		if role, err := s.Membership(ctx, p.account, p.user); err != nil || role != tenant.RoleOwner {
			t.Errorf("owner of personal account %s: %q %v", p.account, role, err)
		}
	}

	acme, err := s.Account(ctx, DemoAcmeAccountID)
	if err != nil || acme.Personal || acme.PrimaryOwnerUserID != DemoAliceUserID {
		t.Fatalf("acme = %+v, %v", acme, err)
	}
	if p, _ := s.Plan(ctx, DemoAcmeAccountID); p.Tier != "tier_200_1000" {
		t.Errorf("acme tier = %q", p.Tier)
	}
	if r, err := s.Membership(ctx, DemoAcmeAccountID, DemoAliceUserID); err != nil || r != tenant.RoleOwner {
		t.Errorf("alice in acme: %q %v", r, err)
	}
	if r, err := s.Membership(ctx, DemoAcmeAccountID, DemoBobUserID); err != nil || r != tenant.RoleMember {
		t.Errorf("bob in acme: %q %v", r, err)
	}
	if _, err := s.Membership(ctx, DemoAcmeAccountID, DemoCarolUserID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("carol in acme: %v, want not found", err)
	}
	route, err := s.Route(ctx, DemoAcmeAccountID)
	if err != nil || route.RoleARN != DemoAcmeRoleARN || route.ExternalID != DemoAcmeExternalID || route.Region != DemoAcmeRegion || !route.Enabled {
		t.Errorf("acme route = %+v, %v", route, err)
	}
	if _, err := s.Route(ctx, DemoCarolAccountID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("carol route: %v, want not found", err)
	}
	routes, _ := s.Routes(ctx)
	if len(routes) != 1 || routes[0].AccountID != DemoAcmeAccountID {
		t.Errorf("routes = %+v", routes)
	}

	// The demo key: exact formats and a hash that matches the stated secret.
	if !validate.PublicKey(DemoAPIKeyPublic) || len(DemoAPIKeyPublic) != 3+32 {
		t.Errorf("demo public key %q is not pk_ + 32 alphanumerics", DemoAPIKeyPublic)
	}
	if !validate.SecretKey(DemoAPIKeySecret) || len(DemoAPIKeySecret) != 3+32 {
		t.Errorf("demo secret %q is not sk_ + 32 alphanumerics", DemoAPIKeySecret)
	}
	k, err := s.APIKeyByPublic(ctx, DemoAPIKeyPublic)
	if err != nil {
		t.Fatalf("demo key: %v", err)
	}
	mac := hmac.New(sha256.New, []byte(DemoAPIKeyHMACSecret))
	mac.Write([]byte(DemoAPIKeySecret))
	if want := hex.EncodeToString(mac.Sum(nil)); k.SecretKeyHash != want {
		t.Errorf("demo secret_key_hash = %s, want HMAC %s", k.SecretKeyHash, want)
	}
	if k.AccountID != DemoAcmeAccountID || k.Status != tenant.KeyActive || k.KeyID != DemoAPIKeyID {
		t.Errorf("demo key = %+v", k)
	}
	if !strings.Contains(string(DefaultTenants), "DEMO VALUES") {
		t.Error("default tenants file must say its values are demo values")
	}
}

func TestLookupsRejectBadInput(t *testing.T) {
	s, err := Load(DefaultTenants)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, bad := range []string{"", "x", "' OR 1=1", "a0000000-0000-4000-8000-00000000000", strings.Repeat("a", 10000)} {
		if _, err := s.Account(ctx, bad); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Account(%q) = %v", bad, err)
		}
		if _, err := s.PersonalAccount(ctx, bad); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("PersonalAccount(%q) = %v", bad, err)
		}
		if _, err := s.Membership(ctx, DemoAcmeAccountID, bad); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Membership(%q) = %v", bad, err)
		}
		if _, err := s.Route(ctx, bad); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Route(%q) = %v", bad, err)
		}
		if _, err := s.APIKeyByPublic(ctx, bad); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("APIKeyByPublic(%q) = %v", bad, err)
		}
		if p, err := s.Plan(ctx, bad); err != nil || p.Tier != tenant.NoTier {
			t.Errorf("Plan(%q) = %+v %v", bad, p, err)
		}
	}
	// Upper-case UUIDs name the same rows.
	if a, err := s.Account(ctx, strings.ToUpper(DemoAcmeAccountID)); err != nil || a.ID != DemoAcmeAccountID {
		t.Errorf("upper-case id: %+v %v", a, err)
	}
}

func TestTouchAPIKeys(t *testing.T) {
	s, err := Load(DefaultTenants)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.TouchAPIKeys(ctx, []string{DemoAPIKeyID, "not-a-uuid", "c0000000-0000-4000-8000-000000000099"}, at); err != nil {
		t.Fatal(err)
	}
	// An older touch does not move it back.
	if err := s.TouchAPIKeys(ctx, []string{DemoAPIKeyID}, at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	k, _ := s.APIKeyByPublic(ctx, DemoAPIKeyPublic)
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(at) {
		t.Fatalf("last_used_at = %v, want %v", k.LastUsedAt, at)
	}
	if len(s.lastUsed) != 1 {
		t.Fatalf("unknown key ids were recorded: %v", s.lastUsed)
	}
}

const validAccount = `
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
`

func TestParseValidation(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; empty means valid
	}{
		{"empty file", "", ""},
		{"empty list", "accounts: []", ""},
		{"minimal", "accounts:" + validAccount, ""},
		{"unknown field", "accounts:\n  - id: b0000000-0000-4000-8000-000000000001\n    primary_owner: 44444444-4444-4444-8444-444444444444\n    colour: red\n", "colour"},
		{"bad id", "accounts:\n  - id: nope\n    primary_owner: 44444444-4444-4444-8444-444444444444\n", `accounts[0]: id "nope" is not a UUID`},
		{"bad owner", "accounts:\n  - id: b0000000-0000-4000-8000-000000000001\n    primary_owner: bob\n", "primary_owner"},
		{"duplicate id", "accounts:" + validAccount + validAccount, "duplicate account id"},
		{"two personal accounts", `accounts:
  - {id: b0000000-0000-4000-8000-000000000001, primary_owner: 44444444-4444-4444-8444-444444444444, personal: true}
  - {id: b0000000-0000-4000-8000-000000000002, primary_owner: 44444444-4444-4444-8444-444444444444, personal: true}
`, "already has personal account"},
		{"bad role", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    members: [{user: 55555555-5555-4555-8555-555555555555, role: admin}]
`, `role "admin" is not owner or member`},
		{"duplicate member", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    members: [{user: 55555555-5555-4555-8555-555555555555, role: member}, {user: 55555555-5555-4555-8555-555555555555, role: owner}]
`, "listed twice"},
		{"owner demoted", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    members: [{user: 44444444-4444-4444-8444-444444444444, role: member}]
`, "must have role owner"},
		{"route without external id", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route: {role_arn: "arn:aws:iam::111122223333:role/R", region: eu-west-1}
`, "accounts[0] (b0000000-0000-4000-8000-000000000001).route: external_id is required"},
		{"disabled route without external id", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route: {role_arn: "arn:aws:iam::111122223333:role/R", enabled: false}
`, "external_id is required"},
		{"bad arn", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route: {role_arn: "arn:aws:iam::1234:user/x", external_id: ext-1}
`, "accounts[0] (b0000000-0000-4000-8000-000000000001).route: role_arn"},
		{"bad region", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route: {role_arn: "arn:aws:iam::111122223333:role/R", external_id: ext-1, region: Mars}
`, `region "Mars"`},
		{"bad external id", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route: {role_arn: "arn:aws:iam::111122223333:role/R", external_id: "has space"}
`, "external_id"},
		{"inference profiles", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route:
      role_arn: "arn:aws:iam::111122223333:role/R"
      external_id: ext-1
      inference_profiles: {"anthropic.claude-3-haiku-20240307-v1:0": "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1"}
`, ""},
		{"bad inference profile", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route: {role_arn: "arn:aws:iam::111122223333:role/R", external_id: ext-1, inference_profiles: {m: "arn:aws:bedrock:eu-west-1:111122223333:foundation-model/m"}}
`, "not an application-inference-profile ARN"},
		{"inference profile bound to two accounts", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    route: {role_arn: "arn:aws:iam::111122223333:role/R", external_id: ext-1, inference_profiles: {m: "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1"}}
  - id: b0000000-0000-4000-8000-000000000002
    primary_owner: 55555555-5555-4555-8555-555555555555
    route: {role_arn: "arn:aws:iam::111122223333:role/S", external_id: ext-2, inference_profiles: {n: "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1"}}
`, "is also bound to account b0000000-0000-4000-8000-000000000001"},
		{"bad tier", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    tier: "tier 1"
`, "tier"},
		{"short public key", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    api_keys: [{key_id: c0000000-0000-4000-8000-000000000001, public_key: pk_short, secret_key_hash: ` + hash + `}]
`, "exactly 32"},
		{"bad hash not echoed", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    api_keys: [{key_id: c0000000-0000-4000-8000-000000000001, public_key: pk_` + strings.Repeat("a", 32) + `, secret_key_hash: SECRETSECRET}]
`, "secret_key_hash must be"},
		{"bad status", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    api_keys: [{key_id: c0000000-0000-4000-8000-000000000001, public_key: pk_` + strings.Repeat("a", 32) + `, secret_key_hash: ` + hash + `, status: paused}]
`, `status "paused"`},
		{"duplicate public key", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    api_keys:
      - {key_id: c0000000-0000-4000-8000-000000000001, public_key: pk_` + strings.Repeat("a", 32) + `, secret_key_hash: ` + hash + `}
      - {key_id: c0000000-0000-4000-8000-000000000002, public_key: pk_` + strings.Repeat("a", 32) + `, secret_key_hash: ` + hash + `}
`, "listed twice"},
		{"duplicate key id", `accounts:
  - id: b0000000-0000-4000-8000-000000000001
    primary_owner: 44444444-4444-4444-8444-444444444444
    api_keys:
      - {key_id: c0000000-0000-4000-8000-000000000001, public_key: pk_` + strings.Repeat("a", 32) + `, secret_key_hash: ` + hash + `}
      - {key_id: c0000000-0000-4000-8000-000000000001, public_key: pk_` + strings.Repeat("b", 32) + `, secret_key_hash: ` + hash + `}
`, "already used"},
		{"two documents", "accounts: []\n---\naccounts: []\n", "more than one YAML document"},
		{"not yaml", "accounts: [", "tenants file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted invalid file, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "SECRETSECRET") {
				t.Fatalf("error echoes a secret hash: %v", err)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	_, snap, err := parse([]byte(`accounts:
  - id: B0000000-0000-4000-8000-00000000000A
    primary_owner: 44444444-4444-4444-8444-444444444444
    balance: 12.5
    route: {role_arn: "arn:aws:iam::111122223333:role/R", external_id: ext-1}
    api_keys: [{key_id: c0000000-0000-4000-8000-000000000001, public_key: pk_`+strings.Repeat("a", 32)+`, secret_key_hash: `+strings.Repeat("ab", 32)+`, expires_at: 2030-01-02T03:04:05Z}]
`), time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	id := "b0000000-0000-4000-8000-00000000000a"
	if _, ok := snap.accounts[id]; !ok {
		t.Fatalf("id not normalised to lower case: %v", snap.accounts)
	}
	if p := snap.plans[id]; p.Tier != tenant.NoTier || p.Balance == nil || *p.Balance != 12.5 {
		t.Errorf("plan = %+v", p)
	}
	if r := snap.routes[id]; !r.Enabled || r.Region != "" || !r.UpdatedAt.Equal(time.Unix(100, 0)) {
		t.Errorf("route = %+v", r)
	}
	k := snap.keys["pk_"+strings.Repeat("a", 32)]
	if k.Status != tenant.KeyActive || k.ExpiresAt == nil || k.ExpiresAt.Year() != 2030 {
		t.Errorf("key = %+v", k)
	}
	if r := snap.members[memberKey(id, "44444444-4444-4444-8444-444444444444")]; r != tenant.RoleOwner {
		t.Errorf("primary owner role = %q", r)
	}
}

func TestOpenReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(path, DefaultTenants, 0o600); err != nil {
		t.Fatal(err)
	}
	var reloads atomic.Int32
	ctx := context.Background()
	s, err := Open(ctx, path, Options{PollInterval: 20 * time.Millisecond, OnReload: func() { reloads.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p, _ := s.Plan(ctx, DemoBobAccountID); p.Tier != "free" {
		t.Fatalf("initial bob tier %q", p.Tier)
	}
	changed := strings.Replace(string(DefaultTenants), "slug: bob\n    personal: true\n    primary_owner: 22222222-2222-4222-8222-222222222222\n    tier: free",
		"slug: bob\n    personal: true\n    primary_owner: 22222222-2222-4222-8222-222222222222\n    tier: tier_150_1200", 1)
	if changed == string(DefaultTenants) {
		t.Fatal("test edit did not apply")
	}
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { p, _ := s.Plan(ctx, DemoBobAccountID); return p.Tier == "tier_150_1200" })
	if reloads.Load() < 1 {
		t.Fatal("OnReload not called")
	}

	// An invalid edit keeps the last good tenants.
	n := reloads.Load()
	if err := os.WriteFile(path, []byte("accounts: [{id: broken}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if p, _ := s.Plan(ctx, DemoBobAccountID); p.Tier != "tier_150_1200" {
		t.Fatalf("invalid file replaced tenants: tier %q", p.Tier)
	}
	if reloads.Load() != n {
		t.Fatal("OnReload called for an invalid file")
	}
	s.Close()
	s.Close()
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "missing.yaml"), Options{}); err == nil {
		t.Fatal("missing file accepted")
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("accounts: [{id: x}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("invalid file: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 3s")
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultTenants)
	f.Add([]byte("accounts: []"))
	f.Add([]byte("accounts:" + validAccount))
	f.Add([]byte("accounts: [{id: x, members: [{user: 1}]}]"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, snap, err := parse(data, time.Unix(0, 0))
		if err != nil {
			if file != nil || snap != nil {
				t.Fatal("error with a result")
			}
			return
		}
		// Every account that parsed is indexed and its owner is an owner.
		for id, a := range snap.accounts {
			if !validate.UUID(id) || !validate.UUID(a.PrimaryOwnerUserID) {
				t.Fatalf("invalid ids indexed: %+v", a)
			}
			if snap.members[memberKey(id, a.PrimaryOwnerUserID)] != tenant.RoleOwner {
				t.Fatalf("primary owner of %s is not an owner", id)
			}
		}
		for pk, k := range snap.keys {
			if !validate.PublicKey(pk) || !validate.SecretHash(k.SecretKeyHash) {
				t.Fatalf("invalid key indexed: %s", pk)
			}
		}
		for _, r := range snap.routes {
			if err := validate.Route(r); err != nil {
				t.Fatalf("invalid route indexed: %+v: %v", r, err)
			}
		}
	})
}

func TestTiers(t *testing.T) {
	ctx := context.Background()
	demo, err := Load(DefaultTenants)
	if err != nil {
		t.Fatal(err)
	}
	got, err := demo.Tiers(ctx)
	if err != nil {
		t.Fatalf("Tiers: %v", err)
	}
	if want := []string{"free", "tier_125_800", "tier_200_1000"}; !slices.Equal(got, want) {
		t.Errorf("demo Tiers = %q, want %q", got, want)
	}
	s, err := Load([]byte(`accounts:
  - {id: a0000000-0000-4000-8000-000000000001, personal: true, primary_owner: 11111111-1111-4111-8111-111111111111, tier: gold}
  - {id: a0000000-0000-4000-8000-000000000002, personal: true, primary_owner: 22222222-2222-4222-8222-222222222222}
  - {id: a0000000-0000-4000-8000-000000000003, personal: true, primary_owner: 33333333-3333-4333-8333-333333333333, tier: gold}
  - {id: a0000000-0000-4000-8000-000000000004, personal: true, primary_owner: 44444444-4444-4444-8444-444444444444, trial_status: active}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err = s.Tiers(ctx)
	if err != nil {
		t.Fatalf("Tiers: %v", err)
	}
	if want := []string{"gold", tenant.NoTier}; !slices.Equal(got, want) {
		t.Errorf("Tiers = %q, want %q", got, want)
	}
}
