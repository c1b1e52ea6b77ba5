package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// logLine is one JSON slog record of tenantgate's log.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// tenantgateLog reads tenantgate's JSON log lines from the stack.
func tenantgateLog(t *testing.T, st *stack.Stack) ([]logLine, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(st.Dir, "tenantgate.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out, raw
}

// TestRequestIDInLogs sends requests through the real Envoy and checks that
// ext_authz's decision line and ext_proc's lines of each request carry the
// same x-request-id (Envoy generates it), and that an enterprise tenant's
// request has exactly one audit line of its routing decision, without the
// ExternalId or credentials.
func TestRequestIDInLogs(t *testing.T) {
	st := startStack(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	callers := []struct {
		name       string
		opts       callerOpts
		account    string
		signer     string
		enterprise bool
	}{
		{"user, platform", callerOpts{token: token(t, st, stack.AliceUserID)}, stack.AlicePersonal, "platform", false},
		{"API key, enterprise route", callerOpts{headers: map[string]string{"x-api-key": stack.AcmeAPIKeyPublic + ":" + stack.AcmeAPIKeySecret}}, stack.AcmeAccountID, "tenant", true},
	}
	for _, c := range callers {
		if _, err := newCaller(t, st, c.opts).converse(ctx, stack.DemoModel); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	// tenantgate writes its lines before answering Envoy; allow the file
	// write to land.
	time.Sleep(200 * time.Millisecond)
	lines, raw := tenantgateLog(t, st)
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			var authz logLine
			for _, l := range lines {
				if l.str("msg") == "ext_authz decision" && l.str("account_id") == c.account {
					authz = l
				}
			}
			id := authz.str("request_id")
			if id == "" {
				t.Fatalf("no ext_authz decision line with a request_id for %s", c.account)
			}
			var signed, audits int
			for _, l := range lines {
				if l.str("request_id") != id {
					continue
				}
				switch l.str("msg") {
				case "bedrock request signed":
					signed++
					if l.str("component") != "extproc" || l.str("signer") != c.signer || l.str("account_id") != c.account {
						t.Errorf("signed line = %v", l)
					}
				case "enterprise routing decision":
					audits++
					if l["audit"] != true || l.str("decision") != "tenant_role" || l.str("role_aws_account_id") != "111122223333" ||
						l.str("region") != stack.AcmeRegion || l.str("account_id") != c.account {
						t.Errorf("audit line = %v", l)
					}
				}
			}
			if signed != 1 {
				t.Errorf("%d ext_proc 'bedrock request signed' lines with request_id %s, want 1", signed, id)
			}
			want := 0
			if c.enterprise {
				want = 1
			}
			if audits != want {
				t.Errorf("%d audit lines with request_id %s, want %d", audits, id, want)
			}
		})
	}
	for _, secret := range []string{stack.AcmeExternalID, stack.AcmeAPIKeySecret, stack.PlatformSecretKey} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("tenantgate's log carries a secret (%.6s...)", secret)
		}
	}
}
