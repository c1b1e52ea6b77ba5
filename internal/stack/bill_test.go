package stack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/fakeaws"
	fakests "github.com/tenantgate/tenantgate/internal/fakeaws/sts"
)

const (
	// acmeProfile is Acme's own application inference profile for DemoModel.
	acmeProfile = "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/acmehaiku01"
	// acmeProfilePath is acmeProfile as the AWS SDKs put it in a path.
	acmeProfilePath = "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A111122223333%3Aapplication-inference-profile%2Facmehaiku01/converse"
	globexAccount   = "a0000000-0000-4000-8000-000000000098"
)

// TestAWSBillAttribution runs the real Envoy, tenantgate and the fake AWS
// with extproc.platform_role_arn and per-tenant application inference
// profiles (tenants file): the fake STS sees every session tagged with
// account_id and tier and SourceIdentity = account id; platform traffic
// uses one invoker-role session per tenant (N requests of one tenant, one
// AssumeRole); Acme's mapped model id reaches Bedrock as Acme's profile ARN;
// another tenant naming Acme's profile is refused before anything leaves.
func TestAWSBillAttribution(t *testing.T) {
	if testing.Short() {
		t.Skip("real Envoy: skipped in -short mode")
	}
	bin := RequireEnvoy(t)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "internal", "store", "filestore", "default-tenants.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Acme maps DemoModel to its own profile; Globex (Carol's team, same
	// AWS account and demo role as Acme) has a profile of its own.
	withProfile := strings.Replace(string(src), "      region: eu-west-1\n      enabled: true\n",
		"      region: eu-west-1\n      enabled: true\n      inference_profiles: {\""+DemoModel+"\": \""+acmeProfile+"\"}\n", 1)
	if withProfile == string(src) {
		t.Fatal("default tenants file changed: Acme's route not found")
	}
	const globexPublic, globexSecret = "pk_globexPublicKey00000000000000000", "sk_globexSecretKey00000000000000000"
	mac := hmac.New(sha256.New, []byte(APIKeySecret))
	mac.Write([]byte(globexSecret))
	withProfile += `
  - id: ` + globexAccount + `
    name: Globex
    slug: globex
    personal: false
    primary_owner: ` + CarolUserID + `
    tier: tier_200_1000
    route:
      role_arn: ` + AcmeRoleARN + `
      external_id: ` + AcmeExternalID + `
      region: eu-west-1
      inference_profiles: {"` + DemoModel + `": "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/globexhaiku1"}
    api_keys:
      - {key_id: c0000000-0000-4000-8000-000000000098, title: Globex, public_key: ` + globexPublic + `, secret_key_hash: ` + hex.EncodeToString(mac.Sum(nil)) + `}
`
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(file, []byte(withProfile), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := Start(ctx, Options{EnvoyBin: bin, TenantsFile: file, PlatformRoleARN: fakeaws.PlatformInvokerRoleARN})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stack logs:\n%s", st.LogTails(6000))
		}
		if err := st.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
	})
	client, err := st.HTTPClient("", "")
	if err != nil {
		t.Fatal(err)
	}
	modelPath := "/model/" + strings.ReplaceAll(DemoModel, ":", "%3A") + "/converse"
	send := func(path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, st.EnvoyURL+path, strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("content-type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	bearer := func(user string) string {
		tok, err := st.Token(user, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	callsOf := func(role string) []fakests.Call {
		var out []fakests.Call
		for _, c := range st.Fakes.STS.Calls() {
			if c.RoleARN == role {
				out = append(out, c)
			}
		}
		return out
	}
	tagged := func(c fakests.Call, account, tier string) bool {
		return c.ErrorCode == "" && c.SourceIdentity == account &&
			slices.Equal(c.Tags, []fakests.Tag{{Key: "account_id", Value: account}, {Key: "tier", Value: tier}})
	}

	t.Run("platform sessions per tenant", func(t *testing.T) {
		n := len(st.Records())
		alice, bob := bearer(AliceUserID), bearer(BobUserID)
		for range 4 {
			if status, body := send(modelPath, map[string]string{"authorization": alice}); status != 200 {
				t.Fatalf("alice: %d %s", status, body)
			}
		}
		if status, body := send(modelPath, map[string]string{"authorization": bob}); status != 200 {
			t.Fatalf("bob: %d %s", status, body)
		}
		calls := callsOf(fakeaws.PlatformInvokerRoleARN)
		if len(calls) != 2 {
			t.Fatalf("%d AssumeRole calls of the invoker role for 2 tenants × 5 requests, want 2: %+v", len(calls), calls)
		}
		for _, acct := range []string{AlicePersonal, BobPersonal} {
			if !slices.ContainsFunc(calls, func(c fakests.Call) bool { return tagged(c, acct, "free") }) {
				t.Fatalf("no tagged invoker session for %s: %+v", acct, calls)
			}
		}
		by := map[string]int{}
		for _, r := range st.Records()[n:] {
			by[r.PrincipalARN]++
		}
		want := map[string]int{
			"arn:aws:sts::999988887777:assumed-role/TenantgatePlatformInvoker/tenantgate-" + AlicePersonal: 4,
			"arn:aws:sts::999988887777:assumed-role/TenantgatePlatformInvoker/tenantgate-" + BobPersonal:   1,
		}
		if len(by) != len(want) {
			t.Fatalf("Bedrock principals %v, want %v", by, want)
		}
		for p, c := range want {
			if by[p] != c {
				t.Fatalf("Bedrock principals %v, want %v", by, want)
			}
		}
	})

	t.Run("tenant session tagged and profile mapped", func(t *testing.T) {
		n := len(st.Records())
		status, body := send(modelPath, map[string]string{"x-api-key": AcmeAPIKeyPublic + ":" + AcmeAPIKeySecret})
		if status != 200 {
			t.Fatalf("acme: %d %s", status, body)
		}
		recs := st.Records()[n:]
		if len(recs) != 1 || recs[0].RawPath != acmeProfilePath || recs[0].ModelID != acmeProfile ||
			!strings.Contains(recs[0].PrincipalARN, "assumed-role/AcmeBedrockAccess/") || recs[0].Status != 200 {
			t.Fatalf("Bedrock records %+v, want one call of %s signed by Acme's role", recs, acmeProfilePath)
		}
		calls := callsOf(AcmeRoleARN)
		if !slices.ContainsFunc(calls, func(c fakests.Call) bool { return tagged(c, AcmeAccountID, AcmeTier) }) {
			t.Fatalf("Acme's AssumeRole calls %+v lack the tags and SourceIdentity", calls)
		}
	})

	t.Run("foreign tenant's profile refused", func(t *testing.T) {
		n := len(st.Records())
		status, body := send(acmeProfilePath, map[string]string{"x-api-key": globexPublic + ":" + globexSecret})
		if status != 403 || !strings.Contains(body, "inference_profile_not_allowed") {
			t.Fatalf("globex calling Acme's profile: %d %s, want 403 inference_profile_not_allowed", status, body)
		}
		status, body = send(acmeProfilePath, map[string]string{"authorization": bearer(AliceUserID)})
		if status < 400 || status >= 500 {
			t.Fatalf("alice (platform) calling Acme's profile: %d %s, want a refusal", status, body)
		}
		if recs := st.Records()[n:]; len(recs) != 0 {
			t.Fatalf("refused requests reached Bedrock: %+v", recs)
		}
	})
}
