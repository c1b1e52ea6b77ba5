package validate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/tenant"
)

func TestValidators(t *testing.T) {
	tests := []struct {
		name string
		f    func(string) bool
		in   string
		want bool
	}{
		{"uuid lower", UUID, "a0000000-0000-4000-8000-000000000001", true},
		{"uuid upper", UUID, "A0000000-0000-4000-8000-00000000000F", true},
		{"uuid short", UUID, "a0000000-0000-4000-8000-00000000001", false},
		{"uuid braces", UUID, "{a0000000-0000-4000-8000-000000000001}", false},
		{"uuid garbage", UUID, "not-a-uuid", false},
		{"uuid sql", UUID, "' OR 1=1 --", false},
		{"arn ok", RoleARN, "arn:aws:iam::111122223333:role/AcmeBedrockAccess", true},
		{"arn path", RoleARN, "arn:aws:iam::111122223333:role/service/Acme_Role-1", true},
		{"arn gov", RoleARN, "arn:aws-us-gov:iam::111122223333:role/R", true},
		{"arn user", RoleARN, "arn:aws:iam::111122223333:user/alice", false},
		{"arn short account", RoleARN, "arn:aws:iam::1111:role/R", false},
		{"arn empty name", RoleARN, "arn:aws:iam::111122223333:role/", false},
		{"external id", ExternalID, "acme-external-id-7f3c", true},
		{"external id short", ExternalID, "a", false},
		{"external id space", ExternalID, "acme id", false},
		{"region", Region, "eu-west-1", true},
		{"region gov", Region, "us-gov-west-1", true},
		{"region bad", Region, "EU-WEST-1", false},
		{"region none", Region, "", false},
		{"public key", PublicKey, "pk_" + strings.Repeat("a", 32), true},
		{"public key 33", PublicKey, "pk_" + strings.Repeat("a", 33), false},
		{"public key 31", PublicKey, "pk_" + strings.Repeat("a", 31), false},
		{"public key symbol", PublicKey, "pk_" + strings.Repeat("a", 31) + "-", false},
		{"secret key", SecretKey, "sk_" + strings.Repeat("Z", 32), true},
		{"secret key as public", PublicKey, "sk_" + strings.Repeat("Z", 32), false},
		{"hash", SecretHash, strings.Repeat("0f", 32), true},
		{"hash upper", SecretHash, strings.Repeat("0F", 32), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f(tt.in); got != tt.want {
				t.Fatalf("%q: got %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeUUID(t *testing.T) {
	got, ok := NormalizeUUID("A0000000-0000-4000-8000-00000000000F")
	if !ok || got != "a0000000-0000-4000-8000-00000000000f" {
		t.Fatalf("got %q %v", got, ok)
	}
	if _, ok := NormalizeUUID("x"); ok {
		t.Fatal("accepted x")
	}
}

func TestLookupText(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"pk_abc", true},
		{"", false},
		{"a\x00b", false},
		{"\xff\xfe", false},
		{strings.Repeat("a", 257), false},
	}
	for _, tt := range tests {
		if got := LookupText(tt.in, 256); got != tt.want {
			t.Errorf("LookupText(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRoute(t *testing.T) {
	const (
		prof1 = "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1b2c3d4e5f6"
		prof2 = "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/f6e5d4c3b2a1"
	)
	ok := tenant.Route{AccountID: "a0000000-0000-4000-8000-000000000001", RoleARN: "arn:aws:iam::111122223333:role/AcmeBedrockAccess",
		ExternalID: "acme-external-id-7f3c", Region: "eu-west-1", Enabled: true}
	tests := []struct {
		name   string
		edit   func(*tenant.Route)
		errHas string // empty: valid
	}{
		{"valid", func(*tenant.Route) {}, ""},
		{"default region", func(r *tenant.Route) { r.Region = "" }, ""},
		{"disabled is still checked", func(r *tenant.Route) { r.Enabled = false; r.ExternalID = "" }, "external_id is required"},
		{"no external id", func(r *tenant.Route) { r.ExternalID = "" }, "external_id is required"},
		{"external id too short", func(r *tenant.Route) { r.ExternalID = "Q" }, "external_id must be"},
		{"external id with space", func(r *tenant.Route) { r.ExternalID = "acme secret" }, "external_id must be"},
		{"external id too long", func(r *tenant.Route) { r.ExternalID = strings.Repeat("a", 1225) }, "external_id must be"},
		{"no role", func(r *tenant.Route) { r.RoleARN = "" }, "role_arn"},
		{"user arn", func(r *tenant.Route) { r.RoleARN = "arn:aws:iam::111122223333:user/alice" }, "role_arn"},
		{"bad region", func(r *tenant.Route) { r.Region = "Mars" }, `region "Mars"`},
		{"inference profiles", func(r *tenant.Route) {
			r.InferenceProfiles = map[string]string{"anthropic.claude-3-haiku-20240307-v1:0": prof1, "eu.amazon.nova-lite-v1:0": prof2}
		}, ""},
		{"profile is a system profile", func(r *tenant.Route) {
			r.InferenceProfiles = map[string]string{"m": "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/eu.m"}
		}, "not an application-inference-profile ARN"},
		{"profile model id with slash", func(r *tenant.Route) { r.InferenceProfiles = map[string]string{"a/b": prof1} }, "not a model id"},
		{"profile empty model id", func(r *tenant.Route) { r.InferenceProfiles = map[string]string{"": prof1} }, "not a model id"},
		{"one profile for two models", func(r *tenant.Route) { r.InferenceProfiles = map[string]string{"a": prof1, "b": prof1} }, "mapped from both a and b"},
		{"too many profiles", func(r *tenant.Route) {
			r.InferenceProfiles = map[string]string{}
			for i := range MaxInferenceProfiles + 1 {
				r.InferenceProfiles[fmt.Sprintf("m%d", i)] = fmt.Sprintf("arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/p%d", i)
			}
		}, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			err := Route(r)
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("Route(%+v) = %v, want nil", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("Route(%+v) = %v, want an error containing %q", r, err, tt.errHas)
			}
			if r.ExternalID != "" && strings.Contains(err.Error(), r.ExternalID) {
				t.Fatalf("error %q repeats the external id", err)
			}
		})
	}
}

func TestRoleAccount(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:iam::111122223333:role/Acme":          "111122223333",
		"arn:aws-us-gov:iam::444455556666:role/p/Name": "444455556666",
		"arn:aws:iam::111122223333:user/alice":         "",
		"arn:aws:sts::111122223333:assumed-role/a/b":   "",
		"": "",
	} {
		if got := RoleAccount(in); got != want {
			t.Errorf("RoleAccount(%q) = %q, want %q", in, got, want)
		}
	}
}
