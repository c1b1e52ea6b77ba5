package plan

import (
	"testing"

	"github.com/tenantgate/tenantgate/internal/config"
)

// TestModelAllowedIgnoresGeography: plan globs name models; the geography
// prefix of a cross-region id (which ext_proc may rewrite to the signer's
// geography after ext_authz checked the plan) never changes the answer.
func TestModelAllowedIgnoresGeography(t *testing.T) {
	c := mustNew(t, config.Plans{
		Models: map[string][]string{
			"free":    {"anthropic.claude-3-haiku-*"},
			"us_glob": {"us.anthropic.claude-3-haiku-*"},
			"arn":     {"arn:aws:bedrock:*:*:inference-profile/us.anthropic.*"},
		},
		DefaultModels: []string{},
	})
	tests := []struct {
		name, tier, model string
		want              bool
	}{
		{"plain id", "free", "anthropic.claude-3-haiku-20240307-v1:0", true},
		{"us profile", "free", "us.anthropic.claude-3-haiku-20240307-v1:0", true},
		{"eu profile", "free", "eu.anthropic.claude-3-haiku-20240307-v1:0", true},
		{"apac profile", "free", "apac.anthropic.claude-3-haiku-20240307-v1:0", true},
		{"global profile", "free", "global.anthropic.claude-3-haiku-20240307-v1:0", true},
		{"us-gov profile", "free", "us-gov.anthropic.claude-3-haiku-20240307-v1:0", true},
		{"other model with prefix", "free", "eu.anthropic.claude-3-5-sonnet-20240620-v1:0", false},
		{"prefixed glob matches plain id", "us_glob", "anthropic.claude-3-haiku-20240307-v1:0", true},
		{"prefixed glob matches rewritten id", "us_glob", "eu.anthropic.claude-3-haiku-20240307-v1:0", true},
		{"unknown prefix is part of the id", "free", "xx.anthropic.claude-3-haiku-20240307-v1:0", false},
		{"arn keeps its geography", "arn", "arn:aws:bedrock:eu-west-1:1:inference-profile/eu.anthropic.x", false},
		{"arn exact geography", "arn", "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.ModelAllowed(tt.tier, tt.model); got != tt.want {
				t.Errorf("ModelAllowed(%q, %q) = %v, want %v", tt.tier, tt.model, got, tt.want)
			}
		})
	}
}
