package extauthz

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
)

const (
	jwtSecret     = "super-secret-jwt-token-with-at-least-32-characters-long"
	projectIssuer = "https://abcd.supabase.co/auth/v1"
	workload      = "spiffe://cluster.local/ns/agents/sa/worker"
	svcKeyWorker  = "svc-worker-key-0123456789abcdef0123456789"
	svcKeyBilling = "svc-billing-key-0123456789abcdef012345678"
)

func serviceRoleToken(t testing.TB, key string, mut map[string]any) string {
	t.Helper()
	c := jwt.MapClaims{"iss": "supabase", "ref": "abcd", "role": "service_role",
		"iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(24 * time.Hour).Unix()}
	for k, v := range mut {
		c[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withServices(c *config.Config) {
	c.Auth.Issuers = []config.Issuer{{Issuer: projectIssuer, HS256Secret: jwtSecret, ServiceRole: true}}
	c.Service.TrustedPrincipals = []string{workload}
	c.Service.APIKeys = map[string]string{"worker": svcKeyWorker}
	c.Service.APIKeysEnv = map[string]string{"billing": "BILLING_SERVICE_KEY"}
}

func servicesWith(extra func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) { withServices(c); extra(c) }
}

func serviceAllowed(acct, principal, tier string, enterprise bool, cred string) want {
	return want{status: 200, id: identity.Identity{
		AccountID: acct, UserID: identity.ServiceUserPrefix + principal, Tier: tier, Role: RoleService,
		Enterprise: enterprise, Principal: identity.PrincipalService, Credential: cred,
	}}
}

func env(name string) string {
	if name == "BILLING_SERVICE_KEY" {
		return svcKeyBilling
	}
	return ""
}

func TestCheckServiceCallers(t *testing.T) {
	srt := serviceRoleToken(t, jwtSecret, nil)
	acct := func(id string) map[string]string { return map[string]string{"x-account-id": id} }
	cases := []checkCase{
		// mTLS workload identity.
		{name: "trusted principal", mutate: withServices, principal: workload, headers: acct(acctTeam),
			want: serviceAllowed(acctTeam, workload, "tier_200_1000", true, "mtls")},
		{name: "trusted principal without account", mutate: withServices, principal: workload, want: denied(400, apierror.AccountRequired)},
		{name: "trusted principal, empty account", mutate: withServices, principal: workload, headers: acct(""), want: denied(400, apierror.AccountRequired)},
		{name: "trusted principal, bad account id", mutate: withServices, principal: workload, headers: acct("team-1"), want: denied(400, apierror.InvalidAccountID)},
		{name: "trusted principal, unknown account", mutate: withServices, principal: workload, headers: acct(acctNone), want: denied(403, apierror.AccountNotFound)},
		{name: "trusted principal, account lookup down", mutate: withServices, principal: workload, headers: acct(acctDown), want: denied(503, apierror.Unavailable)},
		{name: "trusted principal, tier refuses model", mutate: withServices, principal: workload, path: pathSonnet, headers: acct(acctA), want: denied(403, apierror.ModelNotAllowed)},
		{name: "trusted principal, account without plan row is an unknown tier", mutate: withServices, principal: workload, headers: acct(acctB), want: denied(403, apierror.UnknownTier)},
		{name: "trusted principal, tier not listed", mutate: servicesWith(func(c *config.Config) { delete(c.Plans.Models, "tier_200_1000") }),
			principal: workload, headers: acct(acctTeam), want: denied(403, apierror.UnknownTier)},
		{name: "trusted principal, credit gate", mutate: servicesWith(func(c *config.Config) { c.Plans.BlockOnNoCredits = true }),
			principal: workload, headers: acct(acctBroke), want: denied(403, apierror.InsufficientCredits)},
		{name: "untrusted principal is anonymous", mutate: withServices, principal: "spiffe://cluster.local/ns/evil/sa/x", headers: acct(acctTeam), want: denied(401, apierror.MissingCredential)},
		{name: "principal prefix is not trusted", mutate: withServices, principal: workload + "/x", headers: acct(acctTeam), want: denied(401, apierror.MissingCredential)},
		{name: "no trusted principals configured", principal: workload, headers: acct(acctTeam), want: denied(401, apierror.MissingCredential)},
		{name: "untrusted principal with user token keeps membership rule", mutate: withServices, principal: "spiffe://other", headers: with(bearer("tok-b"), "x-account-id", acctTeam), want: denied(403, apierror.NotAMember)},
		{name: "user token beats trusted principal", mutate: withServices, principal: workload, headers: with(bearer("tok-b"), "x-account-id", acctTeam), want: denied(403, apierror.NotAMember)},
		{name: "user token with trusted principal stays a user", mutate: withServices, principal: workload, headers: with(bearer("tok-a"), "x-account-id", acctTeam),
			want: allowed(acctTeam, userA, "tier_200_1000", "member", true, "jwt")},

		// Supabase service_role key.
		{name: "service_role key", mutate: withServices, headers: with(bearer(srt), "x-account-id", acctTeam),
			want: serviceAllowed(acctTeam, "supabase-service-role", "tier_200_1000", true, "service_role")},
		{name: "service_role key, configured issuer", mutate: withServices, headers: with(bearer(serviceRoleToken(t, jwtSecret, map[string]any{"iss": projectIssuer})), "x-account-id", acctA),
			want: serviceAllowed(acctA, "supabase-service-role", "tier_2_20", false, "service_role")},
		{name: "service_role key, custom principal name", mutate: servicesWith(func(c *config.Config) {
			c.Service.ServiceRole.Principal = "backend"
			c.Plans.Models["none"] = []string{"*"}
		}),
			headers: with(bearer(srt), "x-account-id", acctB), want: serviceAllowed(acctB, "backend", "none", false, "service_role")},
		{name: "service_role key without account", mutate: withServices, headers: bearer(srt), want: denied(400, apierror.AccountRequired)},
		{name: "service_role key, unknown account", mutate: withServices, headers: with(bearer(srt), "x-account-id", acctNone), want: denied(403, apierror.AccountNotFound)},
		{name: "service_role key, wrong secret", mutate: withServices, headers: with(bearer(serviceRoleToken(t, "wrong-secret-wrong-secret-wrong-secret-xx", nil)), "x-account-id", acctTeam), want: denied(401, apierror.InvalidToken)},
		{name: "service_role key, expired", mutate: withServices, headers: with(bearer(serviceRoleToken(t, jwtSecret, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), "x-account-id", acctTeam), want: denied(401, apierror.InvalidToken)},
		{name: "service_role key naming a user", mutate: withServices, headers: with(bearer(serviceRoleToken(t, jwtSecret, map[string]any{"sub": userA})), "x-account-id", acctTeam), want: denied(401, apierror.InvalidToken)},
		{name: "service_role disabled", mutate: servicesWith(func(c *config.Config) { c.Auth.Issuers[0].ServiceRole = false }),
			headers: with(bearer(srt), "x-account-id", acctTeam), want: denied(401, apierror.InvalidToken)},
		{name: "service_role key of another project with the same secret", mutate: withServices,
			headers: with(bearer(serviceRoleToken(t, jwtSecret, map[string]any{"ref": "efgh"})), "x-account-id", acctTeam), want: denied(401, apierror.InvalidToken)},
		{name: "legacy service_role key without ref", mutate: withServices,
			headers: with(bearer(serviceRoleToken(t, jwtSecret, map[string]any{"ref": nil})), "x-account-id", acctTeam), want: denied(401, apierror.InvalidToken)},
		{name: "service_role enabled on the other project only", mutate: servicesWith(func(c *config.Config) {
			c.Auth.Issuers[0].ServiceRole = false
			c.Auth.Issuers = append(c.Auth.Issuers, config.Issuer{Issuer: "https://efgh.supabase.co/auth/v1", HS256Secret: jwtSecret, ServiceRole: true})
		}), headers: with(bearer(srt), "x-account-id", acctTeam), want: denied(401, apierror.InvalidToken)},
		{name: "service_role per issuer: the other project's own key", mutate: servicesWith(func(c *config.Config) {
			c.Auth.Issuers[0].ServiceRole = false
			c.Auth.Issuers = append(c.Auth.Issuers, config.Issuer{Issuer: "https://efgh.supabase.co/auth/v1", HS256Secret: jwtSecret, ServiceRole: true})
		}), headers: with(bearer(serviceRoleToken(t, jwtSecret, map[string]any{"ref": "efgh"})), "x-account-id", acctTeam),
			want: serviceAllowed(acctTeam, "supabase-service-role", "tier_200_1000", true, "service_role")},
		{name: "service_role via query token refused", mutate: servicesWith(func(c *config.Config) { c.Auth.QueryToken.Enabled = true }),
			path: pathHaiku + "?token=" + srt, headers: acct(acctTeam), want: denied(401, apierror.InvalidToken)},

		// Service API keys.
		{name: "service key", mutate: withServices, headers: map[string]string{"x-service-key": svcKeyWorker, "x-account-id": acctTeam},
			want: serviceAllowed(acctTeam, "worker", "tier_200_1000", true, "service_api_key")},
		{name: "service key from env", mutate: withServices, headers: map[string]string{"x-service-key": svcKeyBilling, "x-account-id": acctA},
			want: serviceAllowed(acctA, "billing", "tier_2_20", false, "service_api_key")},
		{name: "service key custom header", mutate: servicesWith(func(c *config.Config) { c.Service.APIKeyHeader = "x-internal-key" }),
			headers: map[string]string{"x-internal-key": svcKeyWorker, "x-account-id": acctTeam}, want: serviceAllowed(acctTeam, "worker", "tier_200_1000", true, "service_api_key")},
		{name: "service key wrong", mutate: withServices, headers: map[string]string{"x-service-key": svcKeyWorker + "x", "x-account-id": acctTeam}, want: denied(401, apierror.InvalidServiceKey)},
		{name: "service key prefix", mutate: withServices, headers: map[string]string{"x-service-key": svcKeyWorker[:20], "x-account-id": acctTeam}, want: denied(401, apierror.InvalidServiceKey)},
		{name: "service key without account", mutate: withServices, headers: map[string]string{"x-service-key": svcKeyWorker}, want: denied(400, apierror.AccountRequired)},
		{name: "service key header ignored when none configured", headers: map[string]string{"x-service-key": svcKeyWorker, "x-account-id": acctTeam}, want: denied(401, apierror.MissingCredential)},
		{name: "user token beats service key", mutate: withServices, headers: with(bearer("tok-b"), "x-service-key", svcKeyWorker, "x-account-id", acctTeam), want: denied(403, apierror.NotAMember)},
	}
	runCases(t, cases, env)
}

func TestServiceKeyStrippedAndAudited(t *testing.T) {
	h := newHarness(t, withServices, env)
	resp, err := h.srv.Check(context.Background(), envoyRequest("POST", pathHaiku,
		map[string]string{"x-service-key": svcKeyWorker, "x-account-id": acctTeam, "x-user-id": userOwner, "x-account-role": "owner"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	v := decode(t, resp)
	assertVerdict(t, v, serviceAllowed(acctTeam, "worker", "tier_200_1000", true, "service_api_key"))
	if len(v.removeHdrs) != 1 || v.removeHdrs[0] != "x-service-key" {
		t.Errorf("headers_to_remove = %v, want [x-service-key]", v.removeHdrs)
	}
	h.srv.Check(context.Background(), envoyRequest("POST", pathHaiku, map[string]string{"x-account-id": acctNone}, workload))

	logs := h.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log records, got %d:\n%s", len(lines), logs)
	}
	for _, want := range []string{`"audit":true`, `"principal":"worker"`, `"account_id":"` + acctTeam + `"`, `"model":"` + modelHaiku + `"`, `"request_id":"req-123"`, `"level":"INFO"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("audit record lacks %s: %s", want, lines[0])
		}
	}
	if !strings.Contains(lines[1], `"audit":true`) || !strings.Contains(lines[1], `"principal":"`+workload+`"`) || !strings.Contains(lines[1], `"code":"account_not_found"`) {
		t.Errorf("denied service decision not audited: %s", lines[1])
	}
	if strings.Contains(logs, svcKeyWorker) {
		t.Error("service key in logs")
	}
	if got := metricstest.Value(t, h.reg, "tenantgate_extauthz_service_decisions_total", "principal", "worker", "code", "ok"); got != 1 {
		t.Errorf("service decisions worker/ok = %v, want 1", got)
	}
	if got := metricstest.Value(t, h.reg, "tenantgate_extauthz_service_decisions_total", "principal", workload, "code", string(apierror.AccountNotFound)); got != 1 {
		t.Errorf("service decisions workload/account_not_found = %v, want 1", got)
	}
}

func TestNewServiceValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Config)
		getenv func(string) string
	}{
		{"service_role without an HS256 issuer", func(c *config.Config) {
			c.Auth.Issuers = []config.Issuer{{Issuer: projectIssuer, ServiceRole: true, JWKSURL: projectIssuer + "/.well-known/jwks.json"}}
		}, nil},
		{"removed global service_role switch", func(c *config.Config) { c.Service.ServiceRole.Enabled = true }, nil},
		{"removed global service_role switch with one HS256 issuer", func(c *config.Config) {
			c.Auth.Issuers = []config.Issuer{{Issuer: projectIssuer, HS256Secret: jwtSecret}}
			c.Service.ServiceRole.Enabled = true
		}, nil},
		{"service key env empty", func(c *config.Config) { c.Service.APIKeysEnv = map[string]string{"x": "UNSET"} }, nil},
		{"short service key", func(c *config.Config) { c.Service.APIKeys = map[string]string{"x": "short"} }, nil},
		{"empty trusted principal", func(c *config.Config) { c.Service.TrustedPrincipals = []string{""} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.mutate(cfg)
			_, err := New(Options{Auth: cfg.Auth, Plans: cfg.Plans, Service: cfg.Service, Getenv: tt.getenv},
				newFakeVerifier(), fakeKeys{}, &fakeDir{})
			if err == nil {
				t.Fatal("New accepted an invalid service configuration")
			}
		})
	}
}
