package examples

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/store/pgstore"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestExampleConfigsLoad(t *testing.T) {
	tests := []struct {
		file  string
		env   map[string]string
		check func(t *testing.T, c *config.Config)
	}{
		{
			file: "tenantgate.yaml",
			env: map[string]string{
				config.EnvDatabaseURL:       "postgres://tenantgate@db.example.com:5432/postgres",
				config.EnvSupabaseJWTSecret: "a-supabase-legacy-jwt-secret-of-32-bytes-or-more",
				config.EnvSupabaseAnonKey:   "anon-key-value",
				config.EnvAPIKeySecret:      "api-key-hmac-secret",
			},
			check: func(t *testing.T, c *config.Config) {
				if c.Store.DatabaseURL != "postgres://tenantgate@db.example.com:5432/postgres" {
					t.Errorf("database_url from env = %q", c.Store.DatabaseURL)
				}
				if len(c.Auth.Issuers) != 1 {
					t.Fatalf("issuers = %d, want 1", len(c.Auth.Issuers))
				}
				is := c.Auth.Issuers[0]
				if !strings.HasPrefix(is.Issuer, "https://") || !strings.HasSuffix(is.Issuer, ".supabase.co/auth/v1") {
					t.Errorf("issuer %q is not a Supabase auth issuer", is.Issuer)
				}
				if is.HS256Secret != "a-supabase-legacy-jwt-secret-of-32-bytes-or-more" {
					t.Error("HS256 secret not taken from SUPABASE_JWT_SECRET")
				}
				if !is.UsesJWKS() || is.JWKSHeaders["apikey"] != "anon-key-value" {
					t.Errorf("JWKS with apikey header from SUPABASE_ANON_KEY not configured: jwks=%v headers=%d", is.UsesJWKS(), len(is.JWKSHeaders))
				}
				if !c.Auth.APIKeys.On() {
					t.Error("API keys should be on when API_KEY_SECRET is set")
				}
				if c.ExtProc.TenantSource != config.TenantFromMetadata {
					t.Errorf("tenant_source = %q", c.ExtProc.TenantSource)
				}
			},
		},
		{
			// Without secrets in the environment the production example still
			// loads (JWKS-only verification, API keys off).
			file: "tenantgate.yaml",
			env:  nil,
			check: func(t *testing.T, c *config.Config) {
				if c.Auth.APIKeys.On() {
					t.Error("API keys on without a secret")
				}
				if c.Auth.Issuers[0].HS256Secret != "" {
					t.Error("HS256 secret set without SUPABASE_JWT_SECRET")
				}
			},
		},
		{
			file: "tenantgate-demo.yaml",
			env:  map[string]string{config.EnvSupabaseJWTSecret: "must-not-be-used-by-the-demo-issuer-000000"},
			check: func(t *testing.T, c *config.Config) {
				if kind, err := c.Store.Kind(); kind != config.StoreDemo {
					t.Errorf("demo config should ask for the embedded demo tenants, got %q %v", kind, err)
				}
				if c.Auth.Issuers[0].HS256Secret != "demo-jwt-secret-with-at-least-32-characters" {
					t.Error("demo issuer secret was overridden from the environment")
				}
				if !c.Auth.APIKeys.On() {
					t.Error("demo API key secret not configured")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := config.Load(tt.file, envMap(tt.env))
			if err != nil {
				t.Fatalf("config.Load(%s): %v", tt.file, err)
			}
			tt.check(t, c)
			// Every enterprise tier has model rules; the demo config also
			// covers every tier of the embedded demo tenants it serves.
			var list app.TierLister
			if k, _ := c.Store.Kind(); k == config.StoreDemo {
				list = app.StoreTiers
			}
			warnings, err := app.CheckTiers(context.Background(), c, list)
			if err != nil {
				t.Fatalf("CheckTiers: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("%s: %s", tt.file, w)
			}
		})
	}
}

// Every YAML config in examples/ must be covered by the table above.
func TestEveryExampleConfigIsTested(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example configs found")
	}
	for _, f := range files {
		if _, err := config.Load(f, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

type policy struct {
	Version   string `json:"Version"`
	Statement []struct {
		Sid       string                       `json:"Sid"`
		Effect    string                       `json:"Effect"`
		Principal map[string]any               `json:"Principal"`
		Action    any                          `json:"Action"`
		Resource  any                          `json:"Resource"`
		Condition map[string]map[string]string `json:"Condition"`
	} `json:"Statement"`
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func loadPolicy(t *testing.T, path string) policy {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var p policy
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("%s: Version = %q", path, p.Version)
	}
	for i, s := range p.Statement {
		if s.Effect != "Allow" && s.Effect != "Deny" {
			t.Errorf("%s: statement %d: Effect %q", path, i, s.Effect)
		}
		if len(strs(s.Action)) == 0 {
			t.Errorf("%s: statement %d: no Action", path, i)
		}
	}
	return p
}

func TestAWSPolicies(t *testing.T) {
	files, err := filepath.Glob("aws/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in examples/aws: %v", err)
	}
	for _, f := range files {
		loadPolicy(t, f)
	}

	trust := loadPolicy(t, "aws/tenant-role-trust-policy.json")
	var assumeWithExternalID, tagSession bool
	for _, s := range trust.Statement {
		acts := strs(s.Action)
		if slices.Contains(acts, "sts:AssumeRole") {
			if s.Condition["StringEquals"]["sts:ExternalId"] == "" {
				t.Error("trust policy allows sts:AssumeRole without requiring sts:ExternalId")
			} else {
				assumeWithExternalID = true
			}
		}
		if slices.Contains(acts, "sts:TagSession") {
			tagSession = true
		}
		if s.Principal["AWS"] == "*" || s.Principal["AWS"] == nil {
			t.Errorf("trust statement %q does not name the platform principal", s.Sid)
		}
	}
	if !assumeWithExternalID || !tagSession {
		t.Errorf("trust policy: assume with ExternalId=%v, TagSession=%v; want both", assumeWithExternalID, tagSession)
	}
	// tenantgate tags every session and sets its SourceIdentity; STS
	// refuses both unless the trust policy allows them.
	for _, f := range []string{"aws/tenant-role-trust-policy.json", "aws/platform-invoker-role-trust-policy.json"} {
		var acts []string
		for _, s := range loadPolicy(t, f).Statement {
			if s.Effect == "Allow" && s.Principal["AWS"] != nil && s.Principal["AWS"] != "*" {
				acts = append(acts, strs(s.Action)...)
			}
		}
		for _, want := range []string{"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"} {
			if !slices.Contains(acts, want) {
				t.Errorf("%s does not allow %s to the platform principal", f, want)
			}
		}
	}

	perms := loadPolicy(t, "aws/tenant-role-permissions-policy.json")
	var acts []string
	for _, s := range perms.Statement {
		acts = append(acts, strs(s.Action)...)
		for _, r := range strs(s.Resource) {
			if r == "*" {
				t.Error("permissions policy grants Resource *")
			}
		}
	}
	for _, want := range []string{"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"} {
		if !slices.Contains(acts, want) {
			t.Errorf("permissions policy lacks %s", want)
		}
	}
	for _, a := range acts {
		if !strings.HasPrefix(a, "bedrock:") || strings.Contains(a, "*") {
			t.Errorf("permissions policy action %q is not a specific bedrock action", a)
		}
	}
}

// platformMustNotHave are the Bedrock actions that, on the one identity
// shared by every non-enterprise tenant, would read or start other tenants'
// jobs or expose every tenant's prompts (docs/aws.md).
var platformMustNotHave = []string{
	"bedrock:StartAsyncInvoke", "bedrock:ListAsyncInvokes", "bedrock:GetAsyncInvoke",
	"bedrock:CreateModelInvocationJob", "bedrock:GetModelInvocationJob", "bedrock:ListModelInvocationJobs",
	"bedrock:GetModelInvocationLoggingConfiguration", "bedrock:PutModelInvocationLoggingConfiguration",
}

func TestPlatformPolicyDeniesCrossTenantOperations(t *testing.T) {
	p := loadPolicy(t, "aws/platform-assume-tenant-roles-policy.json")
	denied := map[string]bool{}
	for _, s := range p.Statement {
		for _, a := range strs(s.Action) {
			switch s.Effect {
			case "Deny":
				if slices.Contains(strs(s.Resource), "*") {
					denied[a] = true
				}
			case "Allow":
				if strings.Contains(a, "*") {
					t.Errorf("platform policy allows wildcard action %q", a)
				}
				if slices.Contains(platformMustNotHave, a) {
					t.Errorf("platform policy allows %s", a)
				}
			}
		}
	}
	for _, a := range platformMustNotHave {
		if !denied[a] {
			t.Errorf("platform policy has no explicit Deny of %s on every resource", a)
		}
	}
}

var psqlVar = regexp.MustCompile(`:'([a-z_]+)'`)

// renderPSQL does what psql -v does with :'name' (a quoted literal) and drops
// psql meta-commands, so the example SQL can run through pgx.
func renderPSQL(t *testing.T, sql string, vars map[string]string) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(sql, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), `\`) {
			continue
		}
		lines = append(lines, l)
	}
	out := psqlVar.ReplaceAllStringFunc(strings.Join(lines, "\n"), func(m string) string {
		name := psqlVar.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			t.Fatalf("register-tenant.sql uses :'%s' which the test does not set", name)
		}
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	})
	return out
}

func TestRegisterTenantSQL(t *testing.T) {
	url := testpg.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgstore.Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	const acct = "a0000000-0000-4000-8000-000000000001"
	if _, err := conn.Exec(ctx, `INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account)
		VALUES ($1, '11111111-1111-4111-8111-111111111111', 'Acme', 'acme', false)`, acct); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("register-tenant.sql")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		vars    map[string]string
		wantErr bool
		wantARN string
		region  string
	}{
		{"register", map[string]string{"account_id": acct, "role_arn": "arn:aws:iam::111122223333:role/AcmeBedrockAccess", "external_id": "acme-ext-1", "region": "eu-west-1"}, false, "arn:aws:iam::111122223333:role/AcmeBedrockAccess", "eu-west-1"},
		{"update same account", map[string]string{"account_id": acct, "role_arn": "arn:aws:iam::111122223333:role/AcmeBedrockV2", "external_id": "acme-ext-2", "region": "us-west-2"}, false, "arn:aws:iam::111122223333:role/AcmeBedrockV2", "us-west-2"},
		{"unknown account", map[string]string{"account_id": "a0000000-0000-4000-8000-0000000000ff", "role_arn": "arn:aws:iam::111122223333:role/X", "external_id": "ext-x", "region": "eu-west-1"}, true, "", ""},
		{"malformed role ARN", map[string]string{"account_id": acct, "role_arn": "arn:aws:iam::1234:role/X", "external_id": "ext-x", "region": "eu-west-1"}, true, "", ""},
		{"no external id", map[string]string{"account_id": acct, "role_arn": "arn:aws:iam::111122223333:role/X", "external_id": "", "region": "eu-west-1"}, true, "", ""},
		{"malformed region", map[string]string{"account_id": acct, "role_arn": "arn:aws:iam::111122223333:role/X", "external_id": "ext-x", "region": "Europe"}, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conn.Exec(ctx, renderPSQL(t, string(raw), tt.vars))
			if tt.wantErr {
				if err == nil {
					t.Fatal("expected an error")
				}
				// The failed transaction must leave nothing behind.
				_, _ = conn.Exec(ctx, "ROLLBACK")
				var n int
				if err := conn.QueryRow(ctx, `SELECT count(*) FROM tenantgate.enterprise_bedrock_routing WHERE account_id <> $1`, acct).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d stray routes after a failed registration", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("register-tenant.sql: %v", err)
			}
			var arn, region string
			var enabled bool
			if err := conn.QueryRow(ctx, `SELECT bedrock_role_arn, region, enabled FROM tenantgate.enterprise_bedrock_routing WHERE account_id = $1`, acct).Scan(&arn, &region, &enabled); err != nil {
				t.Fatal(err)
			}
			if arn != tt.wantARN || region != tt.region || !enabled {
				t.Errorf("route = (%s, %s, %v), want (%s, %s, true)", arn, region, enabled, tt.wantARN, tt.region)
			}
		})
	}
}

// python returns the interpreter of the test virtualenv, or skips (fails
// when integration tests are required).
func python(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	if os.Getenv(testpg.EnvRequire) == "1" {
		t.Fatal("PYTHON is not set (run scripts/bootstrap.sh); required by " + testpg.EnvRequire)
	}
	t.Skip("PYTHON not set")
	return ""
}

func TestPythonClientsCompile(t *testing.T) {
	py := python(t)
	files, err := filepath.Glob("clients/*.py")
	if err != nil || len(files) == 0 {
		t.Fatalf("no python clients: %v", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(py, "-c", "import ast,sys; ast.parse(sys.stdin.read(), sys.argv[1])", f)
		cmd.Stdin = strings.NewReader(string(src))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", f, err, out)
		}
	}
}

// TestShellAndJSClientsParse syntax-checks the shell and JavaScript client
// recipes (e2e TestClients runs most of them; Claude Code's only here).
func TestShellAndJSClientsParse(t *testing.T) {
	shells, err := filepath.Glob("clients/*.sh")
	if err != nil || len(shells) == 0 {
		t.Fatalf("no shell clients: %v", err)
	}
	for _, f := range shells {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", f, err, out)
		}
	}
	js, err := filepath.Glob("clients/js/*.mjs")
	if err != nil || len(js) == 0 {
		t.Fatalf("no JavaScript clients: %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv(testpg.EnvRequire) == "1" {
			t.Fatal("node not found; required by " + testpg.EnvRequire)
		}
		t.Skip("node not found")
	}
	for _, f := range js {
		if out, err := exec.Command("node", "--check", f).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", f, err, out)
		}
	}
}
