package extauthz

import (
	"context"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
)

// FuzzFindCredential checks credential extraction from untrusted headers
// and paths.
func FuzzFindCredential(f *testing.F) {
	f.Add("Bearer tok-a", "", pathHaiku+"?token=x")
	f.Add("bearer\ttok", "pk_a:sk_b", "/?token=%zz&token=a")
	f.Add("Basic abc", "", "/model/x/converse?token=")
	f.Add("Bearer  ", "  ", "?token=a%26b")
	cfg := testConfig(f)
	cfg.Auth.QueryToken.Enabled = true
	f.Fuzz(func(t *testing.T, authz, apiKey, path string) {
		r := request{headers: map[string]string{}, path: path}
		if authz != "" {
			r.headers["authorization"] = authz
		}
		if apiKey != "" {
			r.headers["x-api-key"] = apiKey
		}
		c, ok := findCredential(cfg.Auth, r)
		if !ok {
			if c != (credential{}) {
				t.Fatalf("absent credential with value %+v", c)
			}
			return
		}
		if c.value == "" || c.value != strings.TrimSpace(c.value) && c.kind != config.CredentialQueryToken {
			t.Fatalf("credential %q value %q not trimmed or empty", c.kind, c.value)
		}
		switch c.kind {
		case config.CredentialAPIKey:
			if strings.TrimSpace(apiKey) != c.value {
				t.Fatalf("api key %q from header %q", c.value, apiKey)
			}
		case config.CredentialBearer:
			if apiKey != "" && strings.TrimSpace(apiKey) != "" {
				t.Fatal("bearer chosen although an api key came first")
			}
			if !strings.Contains(authz, c.value) {
				t.Fatalf("bearer token %q not in header %q", c.value, authz)
			}
		case config.CredentialQueryToken:
			if !hasQueryParam(path, cfg.Auth.QueryToken.Param) {
				t.Fatalf("query token found but hasQueryParam false for %q", path)
			}
		default:
			t.Fatalf("unknown credential kind %q", c.kind)
		}
	})
}

// FuzzCheck drives the whole decision with untrusted headers and path: it
// must never panic, and must either allow with a complete verified identity
// or deny with a known status.
func FuzzCheck(f *testing.F) {
	f.Add("Bearer tok-a", acctTeam, "POST", pathHaiku, "tier_200_1000")
	f.Add("Bearer tok-b", "", "GET", "/async-invoke?token=tok-a", "")
	f.Add("", "x", "POST", "/model/%2F/converse", "true")
	h := newHarness(f, func(c *config.Config) { c.Auth.QueryToken.Enabled = true }, nil)
	f.Fuzz(func(t *testing.T, authz, acct, method, path, spoof string) {
		hdrs := map[string]string{"authorization": authz, "x-account-id": acct, "x-account-tier": spoof, "x-enterprise": spoof}
		if acct == "" {
			delete(hdrs, "x-account-id")
		}
		resp, err := h.srv.Check(context.Background(), envoyRequest(method, path, hdrs, ""))
		if err != nil {
			t.Fatal(err)
		}
		v := decode(t, resp)
		switch v.status {
		case 200:
			if v.id.AccountID == "" || v.id.UserID == "" || v.id.Tier == "" {
				t.Fatalf("allowed without a complete identity: %+v", v.id)
			}
			for _, name := range identity.Headers {
				if _, ok := v.headers[name]; !ok {
					t.Fatalf("allowed without header %s", name)
				}
			}
			if v.headers[identity.HeaderTier] == spoof && spoof != v.id.Tier {
				t.Fatal("spoofed tier survived")
			}
		case 400, 401, 403, 503:
			if v.code == "" {
				t.Fatal("denial without code")
			}
		default:
			t.Fatalf("unexpected status %d", v.status)
		}
	})
}
