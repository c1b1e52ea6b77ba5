package extproc

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// TestDefaultDeniesEnterpriseWithoutRoute: with the configuration defaults,
// an enterprise tenant without an enabled route is refused, never signed
// with the platform's credentials.
func TestDefaultDeniesEnterpriseWithoutRoute(t *testing.T) {
	c, err := config.Parse(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	routes := &fakeRoutes{routes: map[string]tenant.Route{
		"acct-disabled": {AccountID: "acct-disabled", RoleARN: "arn:aws:iam::111111111111:role/r", Enabled: false},
	}}
	s := newTestServer(t, c.ExtProc, routes, &fakeCreds{})
	for _, acct := range []string{"acct-missing", "acct-disabled"} {
		id := &identity.Identity{AccountID: acct, Enterprise: true, Tier: "enterprise"}
		r := s.handle(context.Background(), &streamState{}, headersMsg(id, true, clientHeaders("POST", haikuPath)...))
		if got := immediateOf(t, r); got != (outcome{403, "no_tenant_route"}) {
			t.Fatalf("%s: got %+v, want 403 no_tenant_route", acct, got)
		}
	}
}

// TestPlatformFallbackCounted: where the fallback is configured, each one
// is logged and counted, without the account id in the metric.
func TestPlatformFallbackCounted(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	cfg := testExtProcConfig()
	cfg.EnterpriseWithoutRoute = config.NoRoutePlatform
	routes := &fakeRoutes{routes: map[string]tenant.Route{
		"acct-disabled": {AccountID: "acct-disabled", RoleARN: "arn:aws:iam::111111111111:role/r", Enabled: false},
		"acct-ent":      defaultRoutes().routes["acct-ent"],
	}}
	s, err := New(Options{
		Config:     cfg,
		Platform:   aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil }),
		Logger:     slog.New(slog.NewJSONHandler(&logs, nil)),
		Registerer: reg,
		Now:        func() time.Time { return testNow },
	}, routes, &fakeCreds{})
	if err != nil {
		t.Fatal(err)
	}
	for _, acct := range []string{"acct-missing", "acct-missing", "acct-disabled", "acct-ent"} {
		id := &identity.Identity{AccountID: acct, Enterprise: true, Tier: "enterprise"}
		r := s.handle(context.Background(), &streamState{}, headersMsg(id, true, clientHeaders("POST", haikuPath)...))
		if r.GetImmediateResponse() != nil {
			t.Fatalf("%s refused: %s", acct, r.GetImmediateResponse().GetBody())
		}
	}
	counts := metricstest.Series(t, reg, "tenantgate_extproc_platform_fallbacks_total")
	want := map[string]float64{"reason=no_route,": 2, "reason=route_disabled,": 1}
	if len(counts) != len(want) {
		t.Errorf("fallback series %v, want %v (no account ids in labels)", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("fallbacks %s = %v, want %v (all %v)", k, counts[k], v, counts)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "signed with platform credentials"); n != 3 {
		t.Errorf("%d fallback log lines, want 3:\n%s", n, out)
	}
	for _, secret := range []string{"platform-secret", "AKIAPLATFORM", "Signature=", "user-jwt-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}
