package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/testpg"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tenantgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	const secret = "api-key-hmac-secret-0123456789abcdef"
	good := writeFile(t, "server:\n  log_level: debug\n")
	bad := writeFile(t, "server:\n  log_level: loud\n  grpc_port: 1\n")
	invalid := writeFile(t, "server:\n  log_level: loud\n  log_format: xml\n")
	demoFile := writeFile(t, "store:\n  demo: true\n")
	tenantsFile := writeFile(t, "store:\n  tenants_file: /etc/tenantgate/tenants.yaml\n")
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
		notIn      string
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "Usage:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: "Usage:"},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "tenantgate "},
		{name: "version extra arg", args: []string{"version", "x"}, wantCode: 2},
		{name: "check-config without a store", args: []string{"check-config"}, wantCode: 1,
			wantStderr: "no tenant store configured: set TENANTGATE_DATABASE_URL (store.database_url) or store.tenants_file, or pass --demo"},
		{name: "check-config --demo", args: []string{"check-config", "--demo"}, wantCode: 0, wantStdout: "grpc_listen: 127.0.0.1:9191", wantStderr: "configuration OK (store: demo)"},
		{name: "check-config store.demo", args: []string{"check-config", "--config", demoFile}, wantCode: 0, wantStdout: "demo: true", wantStderr: "configuration OK (store: demo)"},
		{name: "check-config --demo with a database", args: []string{"check-config", "--demo"},
			env:      map[string]string{"TENANTGATE_DATABASE_URL": "postgres://u:dbpass@h/db"},
			wantCode: 1, wantStderr: "cannot be combined with database_url or tenants_file", notIn: "dbpass"},
		{name: "check-config tenants file", args: []string{"check-config", "--offline", "--config", tenantsFile}, wantCode: 0, wantStderr: "configuration OK (store: tenants-file)"},
		{name: "check-config transaction pooler", args: []string{"check-config", "--offline"},
			env:      map[string]string{"TENANTGATE_DATABASE_URL": "postgres://postgres.ref:dbpass@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"},
			wantCode: 0, wantStderr: "warning: store.database_url looks like a transaction-mode pooler", notIn: "dbpass"},
		{name: "check-config pooler with listen url", args: []string{"check-config", "--offline"},
			env: map[string]string{"TENANTGATE_DATABASE_URL": "postgres://postgres.ref:dbpass@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
				"TENANTGATE_LISTEN_DATABASE_URL": "postgres://postgres:listenpass@db.ref.supabase.co:5432/postgres"},
			wantCode: 0, wantStdout: "listen_database_url: postgres://postgres:REDACTED@db.ref.supabase.co:5432/postgres", wantStderr: "configuration OK (store: postgres)", notIn: "dbpass|listenpass|transaction-mode"},
		{name: "check-config file with env secret", args: []string{"check-config", "--offline", "--config", good},
			env:      map[string]string{"API_KEY_SECRET": secret, "TENANTGATE_DATABASE_URL": "postgres://u:dbpass@h/db"},
			wantCode: 0, wantStdout: "secret: REDACTED", wantStderr: "store: postgres", notIn: secret + "|dbpass"},
		{name: "check-config invalid", args: []string{"check-config", "--config", bad}, wantCode: 1, wantStderr: "grpc_port"},
		{name: "check-config missing file", args: []string{"check-config", "--config", "/nonexistent/x.yaml"}, wantCode: 1, wantStderr: "no such file"},
		{name: "check-config bad flag", args: []string{"check-config", "--cfg", good}, wantCode: 2, wantStderr: "flag provided but not defined"},
		{name: "check-config stray arg", args: []string{"check-config", "extra"}, wantCode: 2, wantStderr: `unexpected argument "extra"`},
		{name: "migrate without url", args: []string{"migrate"}, wantCode: 2, wantStderr: "TENANTGATE_DATABASE_URL"},
		{name: "migrate bad url", args: []string{"migrate", "--database-url", "postgres://u:topsecret@%zz"}, wantCode: 1, notIn: "topsecret"},
		{name: "serve invalid config", args: []string{"serve", "--config", bad}, wantCode: 1, wantStderr: "grpc_port not found"},
		{name: "serve bad flag", args: []string{"serve", "--demo=maybe"}, wantCode: 2, wantStderr: "invalid boolean value"},
		{name: "several validation errors on one line", args: []string{"check-config", "--config", invalid}, wantCode: 1,
			wantStderr: `server.log_level: "loud" is not one of debug, info, warn, error; server.log_format`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tt.env[k] }
			code := run(context.Background(), tt.args, &stdout, &stderr, getenv)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q: %s", tt.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q: %s", tt.wantStderr, stderr.String())
			}
			if tt.notIn != "" {
				for _, s := range strings.Split(tt.notIn, "|") {
					if strings.Contains(stdout.String()+stderr.String(), s) {
						t.Errorf("output contains secret %q", s)
					}
				}
			}
			if code == 1 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("error is not one line: %s", stderr.String())
			}
		})
	}
}

// serve without a database URL, a tenants file or --demo must refuse to
// start instead of serving the embedded demo tenants and their public API
// key secret.
func TestServeRefusesWithoutStore(t *testing.T) {
	cfg := writeFile(t, "server:\n  grpc_listen: 127.0.0.1:0\n  http_listen: 127.0.0.1:0\n  shutdown_grace: 1s\n  shutdown_drain: 0s\n")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// Should serve start anyway, the deadline stops it and the exit code
	// below shows it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stdout, stderr syncBuf
	code := run(ctx, []string{"serve", "--config", cfg}, &stdout, &stderr, func(string) string { return "" })
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
	}
	for _, want := range []string{"no tenant store configured", "TENANTGATE_DATABASE_URL", "store.tenants_file", "--demo"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q: %s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "tenantgate serving") {
		t.Errorf("served without a store: %s", stderr.String())
	}
}

func TestServeUntilSignal(t *testing.T) {
	cfg := writeFile(t, "server:\n  grpc_listen: 127.0.0.1:0\n  http_listen: 127.0.0.1:0\n  shutdown_grace: 2s\n  shutdown_drain: 0s\n")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--config", cfg}, &stdout, &stderr, func(string) string { return "" })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "tenantgate serving") {
		if time.Now().After(deadline) {
			t.Fatalf("not serving: %s", stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(stderr.String(), "tenantgate stopped") {
		t.Errorf("no stop log: %s", stderr.String())
	}
}

func TestMigrateAgainstPostgres(t *testing.T) {
	url := testpg.Start(t)
	getenv := func(k string) string {
		if k == "TENANTGATE_DATABASE_URL" {
			return url
		}
		return ""
	}
	for i := 0; i < 2; i++ { // idempotent
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"migrate", "--dev"}, &stdout, &stderr, getenv); code != 0 {
			t.Fatalf("migrate run %d: exit %d: %s", i, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "migrations applied") {
			t.Errorf("no success log: %s", stderr.String())
		}
	}
}

// tenantsWithTiers is a tenants file whose accounts have the tiers free and
// gold, and one account without a tier.
const tenantsWithTiers = `accounts:
  - {id: a0000000-0000-4000-8000-000000000001, personal: true, primary_owner: 11111111-1111-4111-8111-111111111111, tier: free}
  - {id: a0000000-0000-4000-8000-000000000002, personal: true, primary_owner: 22222222-2222-4222-8222-222222222222, tier: gold}
  - {id: a0000000-0000-4000-8000-000000000003, personal: true, primary_owner: 33333333-3333-4333-8333-333333333333}
`

func TestCheckConfigWarnsAboutUnlistedTiers(t *testing.T) {
	tenants := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(tenants, []byte(tenantsWithTiers), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		config     string
		args       []string
		wantWarn   []string
		wantNoWarn []string
	}{
		{name: "unlisted tiers and accounts without a tier",
			config:     "store: {tenants_file: " + tenants + "}\nplans: {enterprise_tiers: [], models: {free: ['anthropic.*']}}\n",
			wantWarn:   []string{`tier "gold"`, `tier "none"`},
			wantNoWarn: []string{`tier "free"`}},
		{name: "every tier listed",
			config:     "store: {tenants_file: " + tenants + "}\nplans: {enterprise_tiers: [], models: {free: ['*'], gold: ['*'], none: []}}\n",
			wantNoWarn: []string{"warning"}},
		{name: "explicit default_models covers every tier",
			config:     "store: {tenants_file: " + tenants + "}\nplans: {enterprise_tiers: [], default_models: ['anthropic.*']}\n",
			wantNoWarn: []string{"warning"}},
		{name: "offline skips the store",
			config:     "store: {tenants_file: " + tenants + "}\nplans: {enterprise_tiers: [], models: {free: ['*']}}\n",
			args:       []string{"--offline"},
			wantWarn:   []string{"not checked"},
			wantNoWarn: []string{`tier "gold"`}},
		{name: "enterprise tier without model rules, offline too",
			config:   "store: {tenants_file: " + tenants + "}\nplans: {enterprise_tiers: [gold], models: {free: ['*']}}\n",
			args:     []string{"--offline"},
			wantWarn: []string{`enterprise tier "gold"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, tt.config)
			var stdout, stderr bytes.Buffer
			args := append([]string{"check-config", "--config", cfg}, tt.args...)
			if code := run(context.Background(), args, &stdout, &stderr, func(string) string { return "" }); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			for _, w := range tt.wantWarn {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			for _, w := range tt.wantNoWarn {
				if strings.Contains(stderr.String(), w) {
					t.Errorf("stderr has %q:\n%s", w, stderr.String())
				}
			}
			if !strings.Contains(stderr.String(), "configuration OK") {
				t.Errorf("no OK line: %s", stderr.String())
			}
		})
	}
}

func TestCheckConfigTiersFromPostgres(t *testing.T) {
	url := testpg.Start(t)
	getenv := func(k string) string {
		if k == "TENANTGATE_DATABASE_URL" {
			return url
		}
		return ""
	}
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"migrate", "--dev"}, &stdout, &stderr, getenv); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr.String())
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `
INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account) VALUES
  ('a0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'A', 'a', true),
  ('a0000000-0000-4000-8000-000000000002', '22222222-2222-4222-8222-222222222222', 'B', 'b', true),
  ('a0000000-0000-4000-8000-000000000003', '33333333-3333-4333-8333-333333333333', 'C', 'c', true);
INSERT INTO public.credit_accounts (account_id, tier) VALUES
  ('a0000000-0000-4000-8000-000000000001', 'free'),
  ('a0000000-0000-4000-8000-000000000002', 'tier_legacy_9');
`); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "plans: {enterprise_tiers: [], models: {free: ['anthropic.*']}}\n")
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"check-config", "--config", cfg}, &stdout, &stderr, getenv); code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, stderr.String())
	}
	out := stderr.String()
	for _, w := range []string{`tier "tier_legacy_9"`, `tier "none"`, "configuration OK (store: postgres)"} {
		if !strings.Contains(out, w) {
			t.Errorf("stderr lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, `tier "free"`) {
		t.Errorf("listed tier reported:\n%s", out)
	}
}

func TestCheckConfigStoreUnreachable(t *testing.T) {
	cfg := writeFile(t, "store: {query_timeout: 1s}\n")
	getenv := func(k string) string {
		if k == "TENANTGATE_DATABASE_URL" {
			return "postgres://u:topsecret@127.0.0.1:1/db?connect_timeout=2"
		}
		return ""
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"check-config", "--config", cfg}, &stdout, &stderr, getenv)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--offline") || strings.Contains(stdout.String()+stderr.String(), "topsecret") {
		t.Errorf("stderr = %s", stderr.String())
	}
}
