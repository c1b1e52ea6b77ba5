package extauthz

import (
	"context"
	"net/url"
	"slices"
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
			if !scanQuery(path, cfg.Auth.QueryToken.Param).present {
				t.Fatalf("query token found but not present under its raw name in %q", path)
			}
		default:
			t.Fatalf("unknown credential kind %q", c.kind)
		}
	})
}

// FuzzScanQuery checks the query-token scan against Envoy's removal by raw
// name: once every pair named exactly param is dropped (what
// query_parameters_to_remove does), nothing left names param in any
// spelling unless the scan reported a disguised name, and every value read
// came from a raw-named pair.
func FuzzScanQuery(f *testing.F) {
	f.Add("/model/x/converse?token=a&b=1", "token")
	f.Add("/?%74oken=a", "token")
	f.Add("/?TOKEN=a&token&token=%zz", "token")
	f.Add("/?access%5Ftoken=a&x=y=z", "access_token")
	f.Add("/?a=1&&=&tok+en=1", "token")
	f.Fuzz(func(t *testing.T, path, param string) {
		s := scanQuery(path, param)
		_, q, hasQuery := strings.Cut(path, "?")
		if !hasQuery || param == "" {
			if s.present || s.disguised || len(s.values) > 0 {
				t.Fatalf("scan of %q for %q found %+v without a query or name", path, param, s)
			}
			return
		}
		raw := 0
		var kept []string
		for _, pair := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(pair, "=")
			if k == param {
				raw++
				if val, err := url.QueryUnescape(v); err == nil && val != "" && !slices.Contains(s.values, val) {
					t.Fatalf("value %q of a raw-named pair not read from %q", val, path)
				}
				continue
			}
			kept = append(kept, pair)
		}
		if s.present != (raw > 0) || len(s.values) > raw {
			t.Fatalf("scan %+v of %q: %d raw-named pairs", s, path, raw)
		}
		after := scanQuery("/?"+strings.Join(kept, "&"), param)
		if after.present || len(after.values) > 0 {
			t.Fatalf("token still read after Envoy's removal: %q -> %+v", path, after)
		}
		if after.disguised != s.disguised {
			t.Fatalf("disguised %v before removal, %v after, for %q", s.disguised, after.disguised, path)
		}
		if !s.disguised {
			for _, pair := range kept {
				k, _, _ := strings.Cut(pair, "=")
				if dec, err := url.QueryUnescape(k); strings.EqualFold(k, param) || err == nil && strings.EqualFold(dec, param) {
					t.Fatalf("%q left upstream names %q but the scan saw no disguise", k, param)
				}
			}
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
