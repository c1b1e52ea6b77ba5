package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
)

// TestRoutingAuditLine: every enterprise tenant's routing decision writes
// exactly one audit line (account, the role's AWS account id, region,
// decision) carrying the request's x-request-id and never the ExternalId;
// other tenants write none.
func TestRoutingAuditLine(t *testing.T) {
	tests := []struct {
		name      string
		account   string
		noRoute   string
		enterpr   bool
		credsErr  error
		wantLines int
		want      map[string]any
	}{
		{name: "tenant role", account: "acct-ent", enterpr: true, wantLines: 1,
			want: map[string]any{"decision": "tenant_role", "role_aws_account_id": "111111111111", "region": "eu-west-1"}},
		{name: "role denied", account: "acct-ent", enterpr: true, credsErr: fmt.Errorf("%w: AccessDenied", awscreds.ErrRoleDenied), wantLines: 1,
			want: map[string]any{"decision": "refused:tenant_role_denied", "role_aws_account_id": "111111111111", "region": "eu-west-1"}},
		{name: "disabled route refused", account: "acct-ent-off", enterpr: true, noRoute: config.NoRouteDeny, wantLines: 1,
			want: map[string]any{"decision": "refused:no_tenant_route", "route": "route_disabled"}},
		{name: "no route, platform fallback", account: "acct-none", enterpr: true, noRoute: config.NoRoutePlatform, wantLines: 1,
			want: map[string]any{"decision": "platform_fallback", "route": "no_route", "region": "us-east-1"}},
		{name: "not enterprise", account: "acct-pro", wantLines: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := testExtProcConfig()
			if tt.noRoute != "" {
				cfg.EnterpriseWithoutRoute = tt.noRoute
			}
			s, err := New(Options{
				Config:   cfg,
				Platform: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil }),
				Logger:   slog.New(slog.NewJSONHandler(&logs, nil)),
				Now:      func() time.Time { return testNow },
			}, defaultRoutes(), &fakeCreds{err: tt.credsErr})
			if err != nil {
				t.Fatal(err)
			}
			id := &identity.Identity{AccountID: tt.account, Enterprise: tt.enterpr, Tier: "enterprise"}
			// clientHeaders carries x-request-id: rid.
			s.handle(context.Background(), &streamState{}, headersMsg(id, true, clientHeaders("POST", haikuPath)...))
			var audits []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil {
					continue
				}
				if m["request_id"] != "rid" {
					t.Errorf("log line without the request id: %s", line)
				}
				if m["msg"] == "enterprise routing decision" {
					audits = append(audits, m)
				}
			}
			if len(audits) != tt.wantLines {
				t.Fatalf("%d audit lines, want %d:\n%s", len(audits), tt.wantLines, logs.String())
			}
			if strings.Contains(logs.String(), `"ext"`) || strings.Contains(logs.String(), "SECRET") {
				t.Errorf("log carries the ExternalId or a secret:\n%s", logs.String())
			}
			if tt.wantLines == 0 {
				return
			}
			a := audits[0]
			if a["audit"] != true || a["account_id"] != tt.account {
				t.Errorf("audit line = %v", a)
			}
			for k, v := range tt.want {
				if a[k] != v {
					t.Errorf("audit %s = %v, want %v", k, a[k], v)
				}
			}
		})
	}
}
