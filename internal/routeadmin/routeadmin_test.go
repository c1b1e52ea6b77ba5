package routeadmin

import (
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

func TestCheck(t *testing.T) {
	good := tenant.Route{AccountID: "a", RoleARN: "arn:aws:iam::111122223333:role/Acme", ExternalID: "acme-ext", Region: "eu-west-1"}
	with := func(f func(*tenant.Route)) tenant.Route { r := good; f(&r); return r }
	tests := []struct {
		name          string
		route         tenant.Route
		defaultRegion string
		wantErr       string
	}{
		{"valid", good, "us-east-1", ""},
		{"default region", with(func(r *tenant.Route) { r.Region = "" }), "us-east-1", ""},
		{"default region not routed", with(func(r *tenant.Route) { r.Region = "" }), "sa-east-1", `"sa-east-1" is not routed`},
		{"region not routed", with(func(r *tenant.Route) { r.Region = "ca-central-1" }), "us-east-1", `"ca-central-1" is not routed`},
		{"malformed region", with(func(r *tenant.Route) { r.Region = "moon-1" }), "us-east-1", "is not an AWS region"},
		{"user ARN", with(func(r *tenant.Route) { r.RoleARN = "arn:aws:iam::111122223333:user/a" }), "us-east-1", "not an IAM role ARN"},
		{"short account", with(func(r *tenant.Route) { r.RoleARN = "arn:aws:iam::1111:role/a" }), "us-east-1", "not an IAM role ARN"},
		{"no ExternalId", with(func(r *tenant.Route) { r.ExternalID = "" }), "us-east-1", "external_id is required"},
		{"bad ExternalId", with(func(r *tenant.Route) { r.ExternalID = "a b" }), "us-east-1", "external_id must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.route, tt.defaultRegion)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check = %v, want %q", err, tt.wantErr)
			}
			if tt.route.ExternalID != "" && strings.Contains(err.Error(), tt.route.ExternalID) {
				t.Errorf("error carries the ExternalId: %v", err)
			}
		})
	}
	for _, r := range envoy.Regions {
		if !Served(r) {
			t.Errorf("Served(%q) = false", r)
		}
	}
}
