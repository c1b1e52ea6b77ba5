package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// wantErrorName is the AWS error type each denial of the client suite must
// carry, by tenantgate error code.
var wantErrorName = map[string]string{
	"invalid_token":     "UnrecognizedClientException",
	"invalid_api_key":   "UnrecognizedClientException",
	"model_not_allowed": "AccessDeniedException",
	"not_a_member":      "AccessDeniedException",
}

// wantReported lists, per client, the denials its suite must report.
var wantReported = map[string][]string{
	"aws-cli":   {"invalid_token", "invalid_api_key", "model_not_allowed"},
	"boto3":     {"invalid_token", "invalid_api_key", "model_not_allowed", "not_a_member"},
	"js-sdk-v3": {"invalid_token", "invalid_api_key", "model_not_allowed", "not_a_member"},
}

// deniedModel is outside the free tier's models (freeModels).
const deniedModel = "meta.llama3-8b-instruct-v1:0"

// TestClients runs the recipes of examples/clients/ unchanged, with the
// pinned real clients (AWS CLI, AnthropicBedrock, langchain-aws, Strands
// from scripts/requirements-test.txt; the AWS SDK for JavaScript v3 and the
// Vercel AI SDK from examples/clients/js/package-lock.json; Claude Code from
// examples/clients/claude-code/package-lock.json), through the
// shipped Envoy to the fake AWS: e2e/clients holds the pytest and node
// suites.
func TestClients(t *testing.T) {
	root, err := stack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	py := python(root)
	pyOK := exec.Command(py, "-c", "import pytest, boto3, awscli, anthropic, langchain_aws, strands").Run() == nil
	nodeModules := filepath.Join(root, "examples", "clients", "js", "node_modules", "@aws-sdk", "client-bedrock-runtime")
	_, nodeErr := exec.LookPath("node")
	claude := filepath.Join(root, "examples", "clients", "claude-code", "node_modules", ".bin", "claude")
	jsOK := nodeErr == nil && fileExists(nodeModules) && fileExists(claude)
	if !pyOK || !jsOK {
		msg := "client suite needs the pinned clients (scripts/bootstrap.sh): python ok=" + boolStr(pyOK) + ", node + node_modules of examples/clients/{js,claude-code} ok=" + boolStr(jsOK)
		if requireIntegration() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	st := startStack(t, stack.Options{Models: freeModels})
	report := filepath.Join(t.TempDir(), "error-names.jsonl")
	env := append(os.Environ(),
		"TG_E2E_ENDPOINT="+st.EnvoyURL,
		"TG_E2E_CA_BUNDLE="+st.Certs.CA,
		"TG_E2E_TOKEN_ALICE="+token(t, st, stack.AliceUserID),
		"TG_E2E_TOKEN_BOB="+token(t, st, stack.BobUserID),
		"TG_E2E_TOKEN_CAROL="+token(t, st, stack.CarolUserID),
		"TG_E2E_API_KEY="+stack.AcmeAPIKeyPublic+":"+stack.AcmeAPIKeySecret,
		"TG_E2E_BAD_API_KEY="+stack.AcmeAPIKeyPublic+":sk_wrongSecretKey000000000000000000",
		"TG_E2E_ACME_ACCOUNT="+stack.AcmeAccountID,
		"TG_E2E_FAKE_ADMIN="+st.FakeAdminURL,
		"TG_E2E_MODEL="+stack.DemoModel,
		"TG_E2E_DENIED_MODEL="+deniedModel,
		"TG_E2E_REPORT="+report,
	)

	t.Run("Python", func(t *testing.T) {
		out := runTool(t, root, env, py, "-m", "pytest", "-q", "-p", "no:cacheprovider", filepath.Join(root, "e2e", "clients"))
		if !strings.Contains(out, "passed") || strings.Contains(out, "skipped") {
			t.Fatalf("pytest did not run every test")
		}
	})
	t.Run("JavaScript", func(t *testing.T) {
		// Node's fetch (Vercel AI SDK) trusts the test CA only this way.
		out := runTool(t, root, append(env, "NODE_EXTRA_CA_CERTS="+st.Certs.CA), "node", "--test", filepath.Join(root, "e2e", "clients"))
		if !strings.Contains(out, "# fail 0") || !strings.Contains(out, "# skipped 0") {
			t.Fatalf("node --test did not pass every test")
		}
	})
	t.Run("ErrorNames", func(t *testing.T) { checkErrorNames(t, report) })
}

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// runTool runs a test runner in root and fails the test if it fails.
func runTool(t *testing.T, root string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s:\n%s", name, strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("%s failed: %v", name, err)
	}
	return string(out)
}

// checkErrorNames compares the error names the client suites reported with
// wantErrorName; every denial of wantReported must have been reported.
func checkErrorNames(t *testing.T, report string) {
	f, err := os.Open(report)
	if err != nil {
		t.Fatalf("no error names reported: %v", err)
	}
	defer f.Close()
	got := map[string]string{} // client/case -> name
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct{ Client, Case, Name string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("report line %q: %v", sc.Text(), err)
		}
		got[r.Client+"/"+r.Case] = r.Name
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	clients := make([]string, 0, len(wantReported))
	for client := range wantReported {
		clients = append(clients, client)
	}
	sort.Strings(clients)
	for _, client := range clients {
		for _, c := range wantReported[client] {
			key := client + "/" + c
			name, ok := got[key]
			if !ok {
				t.Errorf("%s: denial not reported (its test did not run)", key)
				continue
			}
			t.Run(key, func(t *testing.T) {
				if want := wantErrorName[c]; name != want {
					t.Errorf("%s shows error %q, want %q", client, name, want)
				}
			})
		}
	}
}
