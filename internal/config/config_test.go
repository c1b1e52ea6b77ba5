package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const longSecret = "0123456789abcdef0123456789abcdef-secret"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	for _, in := range []string{"", "   \n", "# only a comment\n"} {
		c, err := Parse([]byte(in), nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		checks := []struct {
			name      string
			got, want any
		}{
			{"grpc_listen", c.Server.GRPCListen, "127.0.0.1:9191"},
			{"http_listen", c.Server.HTTPListen, "127.0.0.1:9192"},
			{"shutdown_grace", c.Server.ShutdownGrace.D(), 20 * time.Second},
			{"log_level", c.Server.LogLevel, "info"},
			{"log_format", c.Server.LogFormat, "json"},
			{"database_url", c.Store.DatabaseURL, ""},
			{"cache_ttl", c.Store.CacheTTL.D(), 300 * time.Second},
			{"negative_cache_ttl", c.Store.NegativeCacheTTL.D(), 30 * time.Second},
			{"max_conns", c.Store.MaxConns, int32(10)},
			{"negative_cache_size", c.Store.NegativeCacheSize, 10000},
			{"api_key_lookup_rate", c.Store.APIKeyLookupRate, 50},
			{"api_key_lookup_burst", c.Store.APIKeyLookupBurst, 100},
			{"query_timeout", c.Store.QueryTimeout.D(), 2 * time.Second},
			{"stale_if_error", c.Store.StaleIfError.D(), time.Hour},
			{"credential_order", c.Auth.CredentialOrder, []string{CredentialAPIKey, CredentialBearer, CredentialQueryToken}},
			{"api key header", c.Auth.APIKeys.Header, "x-api-key"},
			{"api keys on", c.Auth.APIKeys.On(), false},
			{"touch_interval", c.Auth.APIKeys.TouchInterval.D(), 10 * time.Second},
			{"query token", c.Auth.QueryToken, QueryTok{Enabled: false, Param: "token"}},
			{"leeway", c.Auth.Leeway.D(), 30 * time.Second},
			{"token_cache_size", c.Auth.TokenCacheSize, 10000},
			{"account_header", c.Auth.AccountHeader, "x-account-id"},
			{"issuers", len(c.Auth.Issuers), 0},
			{"enterprise_tiers", c.Plans.EnterpriseTiers, []string{"tier_125_800", "tier_200_1000", "tier_150_1200"}},
			{"default_models (none: unlisted tiers are refused)", c.Plans.DefaultModels, []string(nil)},
			{"models", c.Plans.Models, map[string][]string(nil)},
			{"block_on_no_credits", c.Plans.BlockOnNoCredits, false},
			{"service key header", c.Service.APIKeyHeader, "x-service-key"},
			{"service role", c.Service.ServiceRole, ServiceRole{Enabled: false, Principal: "supabase-service-role"}},
			{"tenant_source", c.ExtProc.TenantSource, TenantFromMetadata},
			{"default_region", c.ExtProc.DefaultRegion, "us-east-1"},
			{"endpoint_template", c.ExtProc.EndpointTemplate, "bedrock-runtime.{region}.amazonaws.com"},
			{"signing_name", c.ExtProc.SigningName, "bedrock"},
			{"control_endpoint_template", c.ExtProc.ControlEndpointTemplate, "bedrock.{region}.amazonaws.com"},
			{"enterprise_without_route", c.ExtProc.EnterpriseWithoutRoute, NoRouteDeny},
			{"async_invoke", c.ExtProc.AsyncInvoke, AsyncInvokeTenantOnly},
			{"max_body_bytes", c.ExtProc.MaxBodyBytes, int64(10 << 20)},
			{"keep_identity_headers", c.ExtProc.KeepIdentityHeaders, false},
			{"geography", c.ExtProc.Geography, GeographyReject},
			{"platform_account_id", c.ExtProc.PlatformAccountID, ""},
			{"platform_role_arn", c.ExtProc.PlatformRoleARN, ""},
			{"assume_role.duration", c.ExtProc.AssumeRole.Duration.D(), time.Hour},
			{"assume_role.refresh_before", c.ExtProc.AssumeRole.RefreshBefore.D(), 5 * time.Minute},
			{"assume_role.refresh_jitter", c.ExtProc.AssumeRole.RefreshJitter.D(), time.Minute},
			{"assume_role.failure_ttl", c.ExtProc.AssumeRole.FailureTTL.D(), 5 * time.Second},
			{"assume_role.timeout", c.ExtProc.AssumeRole.Timeout.D(), 5 * time.Second},
			{"assume_role.session_name_prefix", c.ExtProc.AssumeRole.SessionNamePrefix, "tenantgate-"},
			{"assume_role.warm_on_start", c.ExtProc.AssumeRole.WarmOnStart, false},
		}
		for _, ch := range checks {
			if !reflect.DeepEqual(ch.got, ch.want) {
				t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
			}
		}
	}
}

func TestIssuerDefaults(t *testing.T) {
	c, err := Parse([]byte("auth:\n  issuers:\n    - issuer: https://p.supabase.co/auth/v1\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	is := c.Auth.Issuers[0]
	if !reflect.DeepEqual(is.Audiences, []string{"authenticated"}) ||
		is.JWKSRefresh.D() != 10*time.Minute || is.UnknownKIDRefetch.D() != 30*time.Second ||
		!reflect.DeepEqual(is.Algorithms, []string{"RS256", "ES256", "EdDSA"}) ||
		is.HS256SecretEnv != EnvSupabaseJWTSecret || !is.UsesJWKS() {
		t.Errorf("issuer defaults: %+v", is)
	}
	if got := is.DefaultJWKSURL(); got != "https://p.supabase.co/auth/v1/.well-known/jwks.json" {
		t.Errorf("DefaultJWKSURL = %q", got)
	}
}

func TestEnvOverrides(t *testing.T) {
	const twoIssuers = `
auth:
  issuers:
    - issuer: https://a.supabase.co/auth/v1
    - issuer: https://b.supabase.co/auth/v1
      hs256_secret_env: B_SECRET
`
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "database url from env wins over the file",
			yaml: "store:\n  database_url: postgres://file@h/db\n",
			env:  map[string]string{EnvDatabaseURL: "postgres://env@h/db"},
			check: func(t *testing.T, c *Config) {
				if c.Store.DatabaseURL != "postgres://env@h/db" {
					t.Errorf("database_url = %q", c.Store.DatabaseURL)
				}
			},
		},
		{
			name: "API_KEY_SECRET turns API keys on",
			env:  map[string]string{EnvAPIKeySecret: longSecret},
			check: func(t *testing.T, c *Config) {
				if c.Auth.APIKeys.Secret != longSecret || !c.Auth.APIKeys.On() {
					t.Errorf("api keys = %+v on=%v", c.Auth.APIKeys, c.Auth.APIKeys.On())
				}
			},
		},
		{
			name: "API keys explicitly disabled stay off with a secret",
			yaml: "auth:\n  api_keys:\n    enabled: false\n",
			env:  map[string]string{EnvAPIKeySecret: longSecret},
			check: func(t *testing.T, c *Config) {
				if c.Auth.APIKeys.On() {
					t.Error("api keys on")
				}
			},
		},
		{
			name: "SUPABASE_JWT_SECRET goes to the first issuer only",
			yaml: twoIssuers,
			env:  map[string]string{EnvSupabaseJWTSecret: longSecret, "B_SECRET": longSecret + "-b"},
			check: func(t *testing.T, c *Config) {
				a, b := c.Auth.Issuers[0], c.Auth.Issuers[1]
				if a.HS256Secret != longSecret || b.HS256Secret != longSecret+"-b" {
					t.Errorf("secrets: a=%t b=%t", a.HS256Secret == longSecret, b.HS256Secret == longSecret+"-b")
				}
				if a.UsesJWKS() {
					t.Error("an HS256 issuer without jwks_url should not fetch JWKS by default")
				}
			},
		},
		{
			name: "hs256_secret_env '-' reads nothing",
			yaml: "auth:\n  issuers:\n    - issuer: https://a.supabase.co/auth/v1\n      hs256_secret_env: \"-\"\n",
			env:  map[string]string{EnvSupabaseJWTSecret: longSecret},
			check: func(t *testing.T, c *Config) {
				if c.Auth.Issuers[0].HS256Secret != "" {
					t.Error("secret read despite '-'")
				}
			},
		},
		{
			name: "env secret overrides the file secret",
			yaml: "auth:\n  issuers:\n    - issuer: https://a.supabase.co/auth/v1\n      hs256_secret: " + longSecret + "-file\n",
			env:  map[string]string{EnvSupabaseJWTSecret: longSecret},
			check: func(t *testing.T, c *Config) {
				if c.Auth.Issuers[0].HS256Secret != longSecret {
					t.Error("env secret did not win")
				}
			},
		},
		{
			name: "jwks headers from env",
			yaml: "auth:\n  issuers:\n    - issuer: https://a.supabase.co/auth/v1\n      jwks_headers_env: {apikey: SUPABASE_ANON_KEY}\n",
			env:  map[string]string{EnvSupabaseAnonKey: "anon"},
			check: func(t *testing.T, c *Config) {
				if c.Auth.Issuers[0].JWKSHeaders["apikey"] != "anon" {
					t.Errorf("jwks headers = %v", c.Auth.Issuers[0].JWKSHeaders)
				}
			},
		},
		{
			name: "AWS_REGION is the default region",
			env:  map[string]string{"AWS_REGION": "eu-central-1"},
			check: func(t *testing.T, c *Config) {
				if c.ExtProc.DefaultRegion != "eu-central-1" {
					t.Errorf("default_region = %q", c.ExtProc.DefaultRegion)
				}
			},
		},
		{
			name: "the file's region wins over AWS_REGION",
			yaml: "extproc:\n  default_region: ap-southeast-2\n",
			env:  map[string]string{"AWS_REGION": "eu-central-1"},
			check: func(t *testing.T, c *Config) {
				if c.ExtProc.DefaultRegion != "ap-southeast-2" {
					t.Errorf("default_region = %q", c.ExtProc.DefaultRegion)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{"log level", "server: {log_level: loud}", nil, `server.log_level: "loud"`},
		{"log format", "server: {log_format: xml}", nil, `server.log_format: "xml"`},
		{"negative shutdown grace", "server: {shutdown_grace: -5s}", nil, "server.shutdown_grace: must not be negative"},
		{"same listen address", "server: {grpc_listen: ':9000', http_listen: ':9000'}", nil, `server: grpc_listen and http_listen are both ":9000"`},
		{"two stores", "store: {database_url: postgres://h/db, tenants_file: t.yaml}", nil, "store: set either database_url or tenants_file"},
		{"negative store duration", "store: {cache_ttl: -1s}", nil, "store: durations must not be negative"},
		{"negative max conns", "store: {max_conns: -1}", nil, "store.max_conns: must not be negative"},
		{"negative key lookup rate", "store: {api_key_lookup_rate: -1}", nil, "store: negative_cache_size, api_key_lookup_rate and api_key_lookup_burst must be positive"},
		{"negative negative cache size", "store: {negative_cache_size: -5}", nil, "store: negative_cache_size, api_key_lookup_rate"},
		{"unknown credential", "auth: {credential_order: [api_key, cookie]}", nil, `auth.credential_order: unknown credential "cookie"`},
		{"credential twice", "auth: {credential_order: [bearer, bearer]}", nil, `auth.credential_order: "bearer" listed twice`},
		{"api keys without secret", "auth: {api_keys: {enabled: true}}", nil, "auth.api_keys: enabled but no secret"},
		{"negative token cache", "auth: {token_cache_size: -1}", nil, "auth.token_cache_size: must not be negative"},
		{"query param needs encoding", "auth: {query_token: {param: 'to ken'}}", nil, `auth.query_token.param: "to ken" must be letters, digits, "-", ".", "_" or "~"`},
		{"query param percent-encoded", "auth: {query_token: {param: 'tok%65n'}}", nil, `auth.query_token.param: "tok%65n" must be`},
		{"issuer missing", "auth: {issuers: [{audiences: [x]}]}", nil, "auth.issuers[0]: issuer is required"},
		{"issuer twice", "auth: {issuers: [{issuer: 'https://a/x'}, {issuer: 'https://a/x'}]}", nil, `auth.issuers[1]: issuer "https://a/x" configured twice`},
		{"no key source", "auth: {issuers: [{issuer: 'https://a/x', jwks: false}]}", nil, "auth.issuers[0]: no key source"},
		{"short hs256 secret", "auth: {issuers: [{issuer: 'https://a/x', hs256_secret: short}]}", nil, "hs256 secret is shorter than 32 bytes"},
		{"short hs256 secret from env", "auth: {issuers: [{issuer: 'https://a/x'}]}", map[string]string{EnvSupabaseJWTSecret: "short"}, "hs256 secret is shorter than 32 bytes"},
		{"jwks needs a URL", "auth: {issuers: [{issuer: supabase}]}", nil, `auth.issuers[0]: jwks needs an absolute http(s) URL, got "supabase"`},
		{"bad jwks_url", "auth: {issuers: [{issuer: 'https://a/x', jwks_url: 'ftp://a/jwks'}]}", nil, "jwks needs an absolute http(s) URL"},
		{"symmetric algorithm for jwks", "auth: {issuers: [{issuer: 'https://a/x', algorithms: [HS256]}]}", nil, `algorithm "HS256" not allowed`},
		{"leeway too long", "auth: {leeway: 10m}", nil, "auth.leeway: must be between 0 and 5m"},
		{"negative leeway", "auth: {leeway: -1s}", nil, "auth.leeway: must be between 0 and 5m"},
		{"bad default glob", "plans: {default_models: ['[']}", nil, `plans.default_models: bad glob "["`},
		{"bad tier glob", "plans: {models: {free: ['anthropic.[']}}", nil, `plans.models.free: bad glob`},
		{"global service_role switch removed", "service: {service_role: {enabled: true}}", nil, "service.service_role.enabled is no longer supported"},
		{"global service_role switch removed with one issuer", "auth: {issuers: [{issuer: 'https://abcd.supabase.co/auth/v1', hs256_secret: " + strings.Repeat("s", 32) + "}]}\nservice: {service_role: {enabled: true}}", nil, "set auth.issuers[].service_role"},
		{"issuer service_role without HS256 secret", "auth: {issuers: [{issuer: 'https://abcd.supabase.co/auth/v1', service_role: true}]}", nil, "auth.issuers[0]: service_role needs the project's HS256 secret"},
		{"bad project ref", "auth: {issuers: [{issuer: 'https://a/x', project_ref: 'AB CD'}]}", nil, `auth.issuers[0]: project_ref "AB CD" is not a Supabase project ref`},
		{"project ref twice", "auth: {issuers: [{issuer: 'https://abcd.supabase.co/auth/v1'}, {issuer: 'https://a/x', project_ref: abcd}]}", nil, `auth.issuers[1]: project ref "abcd" is also the ref of auth.issuers[0]`},
		{"bad principal", "service: {trusted_principals: ['spiffe://a b']}", nil, "service.trusted_principals: invalid principal"},
		{"empty principal", "service: {trusted_principals: ['']}", nil, "service.trusted_principals: invalid principal"},
		{"short service key", "service: {api_keys: {worker: short}}", nil, "service.api_keys.worker: key shorter than 32 characters"},
		{"tenant source", "extproc: {tenant_source: cookie}", nil, `extproc.tenant_source: "cookie"`},
		{"no-route policy", "extproc: {enterprise_without_route: fail}", nil, `extproc.enterprise_without_route: "fail"`},
		{"async-invoke policy", "extproc: {async_invoke: platform}", nil, `extproc.async_invoke: "platform"`},
		{"region", "extproc: {default_region: mars-1}", nil, `extproc.default_region: "mars-1" is not a region`},
		{"geography", "extproc: {geography: ignore}", nil, `extproc.geography: "ignore" is not reject or rewrite`},
		{"platform account", "extproc: {platform_account_id: \"1234\"}", nil, `extproc.platform_account_id: "1234" is not a 12-digit AWS account id`},
		{"platform role", "extproc: {platform_role_arn: \"arn:aws:iam::1234:user/x\"}", nil, `extproc.platform_role_arn: "arn:aws:iam::1234:user/x" is not an IAM role ARN`},
		{"region from env", "", map[string]string{"AWS_REGION": "Europe"}, `extproc.default_region: "Europe" is not a region`},
		{"endpoint template", "extproc: {endpoint_template: bedrock.example.com}", nil, "extproc.endpoint_template: must contain {region}"},
		{"control endpoint template", "extproc: {control_endpoint_template: bedrock.example.com}", nil, "extproc.control_endpoint_template: must contain {region}"},
		{"negative body limit", "extproc: {max_body_bytes: -1}", nil, "extproc.max_body_bytes: must not be negative"},
		{"role duration too short", "extproc: {assume_role: {duration: 10m}}", nil, "extproc.assume_role.duration: must be between 15m and 12h"},
		{"role duration too long", "extproc: {assume_role: {duration: 13h}}", nil, "extproc.assume_role.duration: must be between 15m and 12h"},
		{"refresh before duration", "extproc: {assume_role: {duration: 15m, refresh_before: 15m}}", nil, "refresh_before: must be shorter than duration"},
		{"session prefix", "extproc: {assume_role: {session_name_prefix: " + strings.Repeat("p", 33) + "}}", nil, "session_name_prefix: at most 32 characters"},
		{"negative assume role timing", "extproc: {assume_role: {timeout: -1s}}", nil, "extproc.assume_role: refresh_jitter, failure_ttl and timeout must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(tt.env))
			if err == nil {
				t.Fatalf("want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("error %q lacks the config: prefix", err)
			}
		})
	}
}

func TestEphemeralPortsMayRepeat(t *testing.T) {
	c, err := Parse([]byte("server: {grpc_listen: '127.0.0.1:0', http_listen: '127.0.0.1:0'}"), nil)
	if err != nil || c.Server.GRPCListen != "127.0.0.1:0" {
		t.Fatalf("Parse = %v", err)
	}
}

func TestValidationReportsEverything(t *testing.T) {
	_, err := Parse([]byte("server: {log_level: loud, log_format: xml}\nextproc: {tenant_source: x}\n"), nil)
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"server.log_level", "server.log_format", "extproc.tenant_source"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	const secret = "short-but-secret"
	_, err := Parse([]byte("auth: {issuers: [{issuer: 'https://a/x', hs256_secret: "+secret+"}]}\nservice: {api_keys: {w: "+secret+"}}\n"), nil)
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error reveals a secret: %v", err)
	}
}

func TestUnknownFieldsRejected(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"top level", "servers: {}\n", "field servers not found"},
		{"server", "server: {grpc_port: 9191}\n", "field grpc_port not found"},
		{"issuer", "auth: {issuers: [{issuer: 'https://a/x', secret: x}]}\n", "field secret not found"},
		{"assume role", "extproc: {assume_role: {role_arn: x}}\n", "field role_arn not found"},
		{"wrong type", "store: {max_conns: many}\n", "cannot unmarshal"},
		{"not yaml", "server: [\n", "config: yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30s", 30 * time.Second, ""},
		{"5m", 5 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"45", 45 * time.Second, ""},
		{"'45'", 45 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"soon", 0, `invalid duration "soon"`},
		{"1.5", 0, "invalid duration"},
		{"[1]", 0, "duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := Parse([]byte("server: {shutdown_grace: "+tt.in+"}\n"), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Server.ShutdownGrace.D(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	out, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(90 * time.Second)})
	if err != nil || strings.TrimSpace(string(out)) != "d: 1m30s" {
		t.Errorf("marshal = %q, %v", out, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tenantgate.yaml")
	if err := os.WriteFile(p, []byte("server:\n  grpc_listen: 127.0.0.1:7000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.GRPCListen != "127.0.0.1:7000" || c.Server.HTTPListen != "127.0.0.1:9192" {
		t.Errorf("server = %+v", c.Server)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	c, err = Load("", env(map[string]string{EnvDatabaseURL: "postgres://h/db"}))
	if err != nil || c.Store.DatabaseURL != "postgres://h/db" {
		t.Errorf("Load(\"\") = %+v, %v", c, err)
	}
}

func TestHelpers(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name      string
		got, want bool
	}{
		{"api keys default off", APIKeys{}.On(), false},
		{"api keys on with secret", APIKeys{Secret: "s"}.On(), true},
		{"api keys forced off", APIKeys{Secret: "s", Enabled: &no}.On(), false},
		{"api keys forced on", APIKeys{Enabled: &yes}.On(), true},
		{"jwks when no secret", Issuer{}.UsesJWKS(), true},
		{"no jwks with secret", Issuer{HS256Secret: "s"}.UsesJWKS(), false},
		{"jwks with secret and url", Issuer{HS256Secret: "s", JWKSURL: "https://a/j"}.UsesJWKS(), true},
		{"jwks forced off", Issuer{JWKS: &no}.UsesJWKS(), false},
		{"jwks forced on", Issuer{HS256Secret: "s", JWKS: &yes}.UsesJWKS(), true},
		{"region us-east-1", ValidRegion("us-east-1"), true},
		{"region us-gov-west-1", ValidRegion("us-gov-west-1"), true},
		{"region ap-southeast-2", ValidRegion("ap-southeast-2"), true},
		{"region empty", ValidRegion(""), false},
		{"region injection", ValidRegion("us-east-1.evil.com/x"), false},
		{"region upper", ValidRegion("US-EAST-1"), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if h := (ExtProc{EndpointTemplate: "bedrock-runtime.{region}.amazonaws.com"}).Host("eu-west-1"); h != "bedrock-runtime.eu-west-1.amazonaws.com" {
		t.Errorf("Host = %q", h)
	}
}

func TestIssuerRef(t *testing.T) {
	tests := []struct {
		name string
		is   Issuer
		want string
	}{
		{"hosted issuer", Issuer{Issuer: "https://abcdefghijklmnopqrst.supabase.co/auth/v1"}, "abcdefghijklmnopqrst"},
		{"trailing slash", Issuer{Issuer: "https://abcd.supabase.co/auth/v1/"}, "abcd"},
		{"upper-case host", Issuer{Issuer: "https://ABCD.supabase.co/auth/v1"}, "abcd"},
		{"explicit ref wins", Issuer{Issuer: "https://abcd.supabase.co/auth/v1", ProjectRef: "efgh"}, "efgh"},
		{"explicit ref for a custom domain", Issuer{Issuer: "https://auth.example.com/auth/v1", ProjectRef: "efgh"}, "efgh"},
		{"custom domain without ref", Issuer{Issuer: "https://auth.example.com/auth/v1"}, ""},
		{"not https", Issuer{Issuer: "http://abcd.supabase.co/auth/v1"}, ""},
		{"other path", Issuer{Issuer: "https://abcd.supabase.co/"}, ""},
		{"look-alike domain", Issuer{Issuer: "https://abcd.supabase.co.evil.example/auth/v1"}, ""},
		{"nested subdomain", Issuer{Issuer: "https://x.abcd.supabase.co/auth/v1"}, ""},
		{"port", Issuer{Issuer: "https://abcd.supabase.co:8443/auth/v1"}, ""},
		{"legacy issuer name", Issuer{Issuer: "supabase"}, ""},
	}
	for _, tt := range tests {
		if got := tt.is.Ref(); got != tt.want {
			t.Errorf("%s: Ref() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestShutdownDrain(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want time.Duration
	}{
		{"default", "", DefaultShutdownDrain},
		{"explicit", "server: {shutdown_drain: 15s}", 15 * time.Second},
		{"off", "server: {shutdown_drain: 0s}", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Server.Drain(); got != tc.want {
				t.Errorf("Drain() = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := Parse([]byte("server: {shutdown_drain: -1s}"), nil); err == nil || !strings.Contains(err.Error(), "server.shutdown_drain") {
		t.Errorf("negative drain: err = %v", err)
	}
}
