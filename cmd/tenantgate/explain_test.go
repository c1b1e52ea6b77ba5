package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantgate/tenantgate/internal/app"
)

const (
	explainIssuer = "https://project.supabase.co/auth/v1"
	explainHS256  = "explain-test-hs256-secret-0123456789abcdef"
	haikuPath     = "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke"
)

func explainToken(t *testing.T, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": explainIssuer, "sub": sub, "aud": "authenticated", "role": "authenticated",
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "legacy-hs256"
	s, err := tok.SignedString([]byte(explainHS256))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExplain(t *testing.T) {
	url := cliDB(t)
	cfgFile := writeFile(t, `
auth:
  api_keys: {secret: `+tKeySec+`}
  issuers:
    - {issuer: "`+explainIssuer+`", hs256_secret: "`+explainHS256+`", hs256_secret_env: "-"}
plans:
  enterprise_tiers: [enterprise]
  models:
    free: ["anthropic.claude-3-haiku*"]
    enterprise: ["*"]
extproc: {default_region: us-east-1}
`)
	env := map[string]string{"TENANTGATE_DATABASE_URL": url}
	// acme routes to its own role in eu-west-1; globex has no route.
	if code, _, stderr := runCLI(t, env, "routes", "set", tAcme, "--role-arn", tRoleARN, "--external-id", tExtID, "--region", "eu-west-1"); code != 0 {
		t.Fatal(stderr)
	}
	alice, bob := explainToken(t, tAlice), explainToken(t, tBob)
	key := tPK + ":" + tSK
	tests := []struct {
		name    string
		token   string
		account string
		path    string
		check   func(t *testing.T, e app.Explanation)
		want    []string // in the text output
	}{
		{name: "user, personal account, platform", token: alice, path: haikuPath,
			check: func(t *testing.T, e app.Explanation) {
				a := e.Authz
				if !e.Allowed || a.Issuer != explainIssuer || a.Identity.UserID != tAlice || a.Identity.AccountID != tAliceAcc ||
					a.Identity.Tier != "free" || a.Rule == nil || a.Rule.Glob != "anthropic.claude-3-haiku*" || e.JWTKeyID != "legacy-hs256" {
					t.Errorf("authz = %+v", e)
				}
				if e.Proc == nil || e.Proc.Kind != "platform" || e.Proc.Region != "us-east-1" || e.Proc.Host != "bedrock-runtime.us-east-1.amazonaws.com" {
					t.Errorf("proc = %+v", e.Proc)
				}
			},
			want: []string{"issuer", explainIssuer, "membership", "owner", `"anthropic.claude-3-haiku*" (plans.models.free)`, "platform", "bedrock-runtime.us-east-1.amazonaws.com", "result      allowed"}},
		{name: "user, team account with enterprise route", token: alice, account: tAcme, path: haikuPath,
			check: func(t *testing.T, e app.Explanation) {
				p := e.Proc
				if !e.Allowed || e.Authz.Identity.AccountID != tAcme || !e.Authz.Identity.Enterprise || p == nil ||
					p.Kind != "tenant" || p.RoleARN != tRoleARN || p.RoleAccountID != "111122223333" || p.Region != "eu-west-1" ||
					p.Host != "bedrock-runtime.eu-west-1.amazonaws.com" {
					t.Errorf("explanation = %+v %+v", e.Authz, p)
				}
			},
			want: []string{tRoleARN, "tenant", "eu-west-1"}},
		{name: "API key", token: key, path: haikuPath,
			check: func(t *testing.T, e app.Explanation) {
				if !e.Allowed || e.Authz.Credential != "api_key" || e.Authz.APIKeyID != tKeyID || e.Authz.Identity.AccountID != tAcme ||
					e.Proc == nil || e.Proc.Kind != "tenant" {
					t.Errorf("explanation = %+v %+v", e.Authz, e.Proc)
				}
			},
			want: []string{"api_key", tKeyID}},
		{name: "non-member", token: bob, account: tAcme, path: haikuPath,
			check: func(t *testing.T, e app.Explanation) {
				if e.Allowed || e.Status != 403 || e.Code != "not_a_member" || e.Proc != nil {
					t.Errorf("explanation = %+v", e)
				}
			},
			want: []string{"refused 403 not_a_member"}},
		{name: "unknown tier", token: bob, path: haikuPath,
			check: func(t *testing.T, e app.Explanation) {
				if e.Allowed || e.Code != "unknown_tier" || e.Authz.Identity.Tier != "gold" {
					t.Errorf("explanation = %+v", e)
				}
			},
			want: []string{"gold", "refused 403 unknown_tier"}},
		{name: "model outside the plan", token: alice, path: "/model/anthropic.claude-3-opus-20240229-v1:0/invoke",
			check: func(t *testing.T, e app.Explanation) {
				if e.Allowed || e.Code != "model_not_allowed" || e.Authz.Rule != nil {
					t.Errorf("explanation = %+v", e)
				}
			}},
		{name: "enterprise without route", token: alice, account: tGlobex, path: haikuPath,
			check: func(t *testing.T, e app.Explanation) {
				if e.Allowed || e.Code != "no_tenant_route" || e.Proc == nil || e.Proc.Fallback != "no_route" {
					t.Errorf("explanation = %+v %+v", e, e.Proc)
				}
			}},
		{name: "invalid token", token: alice[:len(alice)-4] + "AAAA", path: haikuPath,
			check: func(t *testing.T, e app.Explanation) {
				if e.Allowed || e.Code != "invalid_token" {
					t.Errorf("explanation = %+v", e)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"explain", "--config", cfgFile, "--token", tt.token, "--path", tt.path}
			if tt.account != "" {
				args = append(args, "--account", tt.account)
			}
			code, stdout, stderr := runCLI(t, env, append(args, "--json")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var e app.Explanation
			if err := json.Unmarshal([]byte(stdout), &e); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			tt.check(t, e)
			_, text, _ := runCLI(t, env, args...)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q:\n%s", w, text)
				}
			}
			for _, out := range []string{stdout, text, stderr} {
				if strings.Contains(out, tt.token) || strings.Contains(out, tSK) || strings.Contains(out, tExtID) {
					t.Errorf("output carries a secret:\n%s", out)
				}
			}
		})
	}
	if code, _, stderr := runCLI(t, env, "explain", "--config", cfgFile, "--path", haikuPath); code != 2 || !strings.Contains(stderr, "--token") {
		t.Errorf("without --token: exit %d: %s", code, stderr)
	}
}
