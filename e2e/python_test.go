package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// python returns the interpreter for e2e/python: $PYTHON, the module's
// .venv, else python3.
func python(root string) string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	if p := filepath.Join(root, ".venv", "bin", "python"); fileExists(p) {
		return p
	}
	return "python3"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// runPython runs the pytest suite in e2e/python against st.
// carol belongs to no team; expired is alice's token, expired an hour ago.
func runPython(t *testing.T, st *stack.Stack, alice, bob, carol, expired string) {
	root, err := stack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	py := python(root)
	if out, err := exec.Command(py, "-c", "import pytest, boto3, litellm").CombinedOutput(); err != nil {
		if requireIntegration() {
			t.Fatalf("%s lacks pytest/boto3/litellm: %v\n%s", py, err, out)
		}
		t.Skipf("python suite needs pytest, boto3 and litellm in %s: %v", py, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "pytest", "-q", "-p", "no:cacheprovider", filepath.Join(root, "e2e", "python"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"TG_E2E_ENDPOINT="+st.EnvoyURL,
		"TG_E2E_CA_BUNDLE="+st.Certs.CA,
		"TG_E2E_TOKEN_ALICE="+alice,
		"TG_E2E_TOKEN_BOB="+bob,
		"TG_E2E_TOKEN_CAROL="+carol,
		"TG_E2E_TOKEN_EXPIRED="+expired,
		"TG_E2E_ACME_ACCOUNT="+stack.AcmeAccountID,
		"TG_E2E_FAKE_ADMIN="+st.FakeAdminURL,
		"TG_E2E_MODEL="+stack.DemoModel,
		"LITELLM_LOCAL_MODEL_COST_MAP=True",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("pytest e2e/python:\n%s", out)
	if err != nil {
		t.Fatalf("pytest failed: %v", err)
	}
	if !strings.Contains(string(out), "passed") || strings.Contains(string(out), "skipped") {
		t.Fatalf("pytest did not run every test")
	}
}
