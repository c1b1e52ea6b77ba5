package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

// Tenants of the CLI tests (the same shapes as the demo tenants).
const (
	tAlice    = "11111111-1111-4111-8111-111111111111"
	tBob      = "22222222-2222-4222-8222-222222222222"
	tAliceAcc = "a0000000-0000-4000-8000-000000000011"
	tBobAcc   = "a0000000-0000-4000-8000-000000000012"
	tAcme     = "a0000000-0000-4000-8000-000000000001"
	tGlobex   = "a0000000-0000-4000-8000-000000000002"
	tNobody   = "a0000000-0000-4000-8000-0000000000ff"
	tRoleARN  = "arn:aws:iam::111122223333:role/AcmeBedrockAccess"
	tExtID    = "acme-external-id-7f3c"
	tPK       = "pk_cliTestAcmePublicKey000000000000"
	tSK       = "sk_cliTestAcmeSecretKey000000000000"
	tKeyID    = "c0000000-0000-4000-8000-000000000001"
	tKeySec   = "cli-test-api-key-hmac-secret-0123456789"
)

// cliDB returns a migrated database (with the development basejump schema)
// holding alice (free, personal), bob (personal, tier gold unknown to the
// configuration), acme (enterprise, alice owner, bob member) and globex
// (enterprise, no route yet), plus an API key of acme.
func cliDB(t *testing.T) string {
	t.Helper()
	url := testpg.Start(t)
	ctx := context.Background()
	if err := app.Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	seed := `
INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account) VALUES
  ('` + tAliceAcc + `', '` + tAlice + `', 'Alice', 'alice', true),
  ('` + tBobAcc + `', '` + tBob + `', 'Bob', 'bob', true),
  ('` + tAcme + `', '` + tAlice + `', 'Acme', 'acme', false),
  ('` + tGlobex + `', '` + tAlice + `', 'Globex', 'globex', false);
INSERT INTO basejump.account_user (user_id, account_id, account_role) VALUES
  ('` + tAlice + `', '` + tAliceAcc + `', 'owner'), ('` + tBob + `', '` + tBobAcc + `', 'owner'),
  ('` + tAlice + `', '` + tAcme + `', 'owner'), ('` + tAlice + `', '` + tGlobex + `', 'owner');
INSERT INTO public.credit_accounts (account_id, tier) VALUES
  ('` + tAliceAcc + `', 'free'), ('` + tBobAcc + `', 'gold'), ('` + tAcme + `', 'enterprise'), ('` + tGlobex + `', 'enterprise');
INSERT INTO public.api_keys (key_id, public_key, secret_key_hash, account_id, status) VALUES
  ('` + tKeyID + `', '` + tPK + `', '` + apikey.Hash(tKeySec, tSK) + `', '` + tAcme + `', 'active');`
	if _, err := conn.Exec(ctx, seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return url
}

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

func TestRoutesCommands(t *testing.T) {
	url := cliDB(t)
	env := map[string]string{"TENANTGATE_DATABASE_URL": url}
	// Steps run in order against one database.
	steps := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stdout+stderr
		notWant  []string
	}{
		{"list empty", []string{"routes", "list"}, 0, []string{"ACCOUNT", "ROLE ARN"}, []string{tAcme}},
		{"set without role", []string{"routes", "set", tAcme, "--external-id", tExtID}, 1,
			[]string{"route refused", "is not an IAM role ARN"}, nil},
		{"set malformed role ARN", []string{"routes", "set", tAcme, "--role-arn", "arn:aws:iam::1234:role/x", "--external-id", tExtID}, 1,
			[]string{"is not an IAM role ARN"}, nil},
		{"set user ARN", []string{"routes", "set", tAcme, "--role-arn", "arn:aws:iam::111122223333:user/alice", "--external-id", tExtID}, 1,
			[]string{"is not an IAM role ARN"}, nil},
		{"set without external id", []string{"routes", "set", tAcme, "--role-arn", tRoleARN}, 1,
			[]string{"external_id is required"}, nil},
		{"set malformed external id", []string{"routes", "set", tAcme, "--role-arn", tRoleARN, "--external-id", "bad id with spaces"}, 1,
			[]string{"external_id must be"}, []string{"bad id with spaces"}},
		{"set region not routed by Envoy", []string{"routes", "set", tAcme, "--role-arn", tRoleARN, "--external-id", tExtID, "--region", "sa-east-1"}, 1,
			[]string{`region "sa-east-1" is not routed by the shipped Envoy configuration`}, nil},
		{"set malformed region", []string{"routes", "set", tAcme, "--role-arn", tRoleARN, "--external-id", tExtID, "--region", "EU"}, 1,
			[]string{"is not an AWS region"}, nil},
		{"set unknown account", []string{"routes", "set", tNobody, "--role-arn", tRoleARN, "--external-id", tExtID}, 1,
			[]string{"does not exist"}, nil},
		{"set not a uuid", []string{"routes", "set", "acme", "--role-arn", tRoleARN, "--external-id", tExtID}, 2,
			[]string{"needs an account id"}, nil},
		{"nothing stored by the refusals", []string{"routes", "list"}, 0, nil, []string{tAcme}},
		{"set", []string{"routes", "set", tAcme, "--role-arn", tRoleARN, "--external-id", tExtID, "--region", "eu-west-1"}, 0,
			[]string{tAcme, tRoleARN, "eu-west-1", "true", "set"}, []string{tExtID}},
		{"set default region", []string{"routes", "set", tGlobex, "--role-arn", "arn:aws:iam::444455556666:role/Globex", "--external-id", "globex-ext"}, 0,
			[]string{tGlobex, "(default)"}, []string{"globex-ext"}},
		{"get", []string{"routes", "get", tAcme}, 0, []string{tRoleARN, "eu-west-1"}, []string{tExtID}},
		{"list", []string{"routes", "list"}, 0, []string{tAcme, tGlobex}, []string{tExtID, "globex-ext"}},
		{"disable", []string{"routes", "disable", tAcme}, 0, []string{tAcme, "false"}, nil},
		{"get json after disable", []string{"routes", "get", tAcme, "--json"}, 0,
			[]string{`"enabled": false`, `"external_id_set": true`, `"role_aws_account_id": "111122223333"`}, []string{tExtID}},
		{"enable", []string{"routes", "enable", "--json", tAcme}, 0, []string{`"enabled": true`}, nil},
		{"delete", []string{"routes", "delete", tGlobex}, 0, []string{"deleted route of " + tGlobex}, nil},
		{"get deleted", []string{"routes", "get", tGlobex}, 1, []string{"has no route"}, nil},
		{"delete again", []string{"routes", "delete", tGlobex}, 1, []string{"has no route"}, nil},
		{"disable missing", []string{"routes", "disable", tNobody}, 1, []string{"has no route"}, nil},
		{"unknown subcommand", []string{"routes", "frob"}, 2, []string{"unknown routes subcommand"}, nil},
		{"no subcommand", []string{"routes"}, 2, []string{"needs a subcommand"}, nil},
		{"get without account", []string{"routes", "get"}, 2, []string{"needs an account id"}, nil},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, env, s.args...)
			out := stdout + stderr
			if code != s.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, s.wantCode, out)
			}
			for _, w := range s.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range s.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
		if !ok {
			t.FailNow()
		}
	}

	// list --json is an array of every route.
	code, stdout, stderr := runCLI(t, env, "routes", "list", "--json")
	if code != 0 {
		t.Fatalf("list --json: exit %d: %s", code, stderr)
	}
	var views []routeView
	if err := json.Unmarshal([]byte(stdout), &views); err != nil {
		t.Fatalf("list --json: %v\n%s", err, stdout)
	}
	if len(views) != 1 || views[0].AccountID != tAcme || !views[0].Enabled || views[0].Region != "eu-west-1" {
		t.Errorf("list --json = %+v", views)
	}
}

func TestRoutesNeedDatabase(t *testing.T) {
	code, _, stderr := runCLI(t, nil, "routes", "list")
	if code != 2 || !strings.Contains(stderr, "TENANTGATE_DATABASE_URL") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
