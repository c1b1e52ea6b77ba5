package main

import (
	"crypto/tls"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/fakeaws"
	"github.com/tenantgate/tenantgate/internal/fakeaws/sts"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// TestRoutesTest runs `routes test` against the fake STS and Bedrock: the
// role is assumed with the route's ExternalId and ListFoundationModels is
// signed with the temporary credentials and verified by the fake.
func TestRoutesTest(t *testing.T) {
	url := cliDB(t)
	dir := t.TempDir()
	certs, err := stack.WriteCerts(dir, envoy.Regions)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fakeaws.Default()
	cfg.Regions = envoy.Regions
	cfg.Platform = fakeaws.Platform{AccessKeyID: stack.PlatformAccessKey, SecretAccessKey: stack.PlatformSecretKey, PrincipalARN: stack.PlatformPrincipal}
	cfg.Roles = []sts.Role{{ARN: tRoleARN, ExternalID: tExtID, TagSession: true, SetSourceIdentity: true}}
	fakes, err := fakeaws.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stsSrv := httptest.NewServer(fakes.STS)
	t.Cleanup(stsSrv.Close)
	cert, err := tls.LoadX509KeyPair(certs.BedrockCert, certs.BedrockKey)
	if err != nil {
		t.Fatal(err)
	}
	bedrockSrv := httptest.NewUnstartedServer(fakes.Bedrock)
	bedrockSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	bedrockSrv.StartTLS()
	t.Cleanup(bedrockSrv.Close)

	// The AWS SDK reads the process environment, as tenantgate serve does.
	t.Setenv("AWS_ENDPOINT_URL_STS", stsSrv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", stack.PlatformAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", stack.PlatformSecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	env := map[string]string{"TENANTGATE_DATABASE_URL": url, envBedrockEndpoint: bedrockSrv.URL}

	set := func(account, role, ext, region string) {
		t.Helper()
		if code, _, stderr := runCLI(t, env, "routes", "set", account, "--role-arn", role, "--external-id", ext, "--region", region); code != 0 {
			t.Fatalf("routes set: exit %d: %s", code, stderr)
		}
	}
	tests := []struct {
		name     string
		role     string
		ext      string
		region   string
		wantCode int
		want     string
	}{
		{"role works", tRoleARN, tExtID, "eu-west-1", 0, "ListFoundationModels in eu-west-1 via bedrock.eu-west-1.amazonaws.com answered HTTP 200"},
		{"another served region", tRoleARN, tExtID, "us-west-2", 0, "answered HTTP 200"},
		{"wrong ExternalId", tRoleARN, "not-the-agreed-id", "eu-west-1", 1, "assume role"},
		{"role unknown to AWS", "arn:aws:iam::111122223333:role/Missing", tExtID, "eu-west-1", 1, "assume role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set(tAcme, tt.role, tt.ext, tt.region)
			before := len(fakes.Bedrock.Records())
			code, stdout, stderr := runCLI(t, env, "routes", "test", tAcme, "--ca-file", certs.CA)
			out := stdout + stderr
			if code != tt.wantCode || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s", code, tt.wantCode, tt.want, out)
			}
			if strings.Contains(out, tt.ext) {
				t.Errorf("output shows the ExternalId:\n%s", out)
			}
			recs := fakes.Bedrock.Records()[before:]
			if tt.wantCode == 0 {
				if len(recs) != 1 || recs[0].Host != "bedrock."+tt.region+".amazonaws.com" {
					t.Fatalf("bedrock saw %+v, want one call to the control plane of %s", recs, tt.region)
				}
			} else if len(recs) != 0 {
				t.Errorf("a refused role still reached Bedrock: %+v", recs)
			}
		})
	}

	// --json reports the probe.
	set(tAcme, tRoleARN, tExtID, "eu-west-1")
	code, stdout, stderr := runCLI(t, env, "routes", "test", tAcme, "--ca-file", certs.CA, "--json")
	if code != 0 || !strings.Contains(stdout, `"ok": true`) || !strings.Contains(stdout, `"role_aws_account_id": "111122223333"`) {
		t.Errorf("--json: exit %d:\n%s%s", code, stdout, stderr)
	}
	// Without the CA the endpoint's certificate is not trusted: a failure,
	// not a silent skip of verification.
	if code, _, stderr := runCLI(t, env, "routes", "test", tAcme); code != 1 || !strings.Contains(stderr, "certificate") {
		t.Errorf("without --ca-file: exit %d: %s", code, stderr)
	}
}
