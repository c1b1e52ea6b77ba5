package stack

import (
	"context"
	"os"
	"testing"
)

// EnvRequireIntegration, set to 1, turns a missing Envoy or PostgreSQL into
// a test failure instead of a skip (`make test` and CI set it).
const EnvRequireIntegration = "TENANTGATE_REQUIRE_INTEGRATION"

// RequireEnvoy returns the Envoy binary for a test that runs the real Envoy.
// Without one it skips the test, or fails it when EnvRequireIntegration=1.
func RequireEnvoy(t testing.TB) string {
	t.Helper()
	bin, err := FindEnvoy(context.Background())
	if err != nil {
		if os.Getenv(EnvRequireIntegration) == "1" {
			t.Fatalf("%s=1 but no Envoy: %v", EnvRequireIntegration, err)
		}
		t.Skipf("needs a real Envoy 1.40 (set ENVOY_BIN): %v", err)
	}
	return bin
}
