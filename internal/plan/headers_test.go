package plan

import (
	"testing"

	"github.com/tenantgate/tenantgate/internal/config"
)

func TestBedrockHeaderAllowed(t *testing.T) {
	c := mustNew(t, config.Plans{
		BedrockHeaders: map[string][]string{
			"priority": {"x-amzn-bedrock-accept", "X-Amzn-Bedrock-Service-Tier"},
			"locked":   {},
			"own_bill": {"*"},
		},
		DefaultBedrockHeaders: config.DefaultBedrockHeaders,
	})
	tests := []struct {
		tier, header string
		want         bool
	}{
		// default list: no cost or billing effect
		{"pro", "x-amzn-bedrock-accept", true},
		{"pro", "x-amzn-bedrock-trace", true},
		{"pro", "X-Amzn-Bedrock-Trace", true},
		{"pro", "x-amzn-bedrock-service-tier", false},
		{"pro", "x-amzn-bedrock-performanceconfig-latency", false},
		{"pro", "x-amzn-bedrock-guardrailidentifier", false},
		{"pro", "x-amzn-bedrock-guardrailversion", false},
		{"pro", "x-amzn-bedrock-request-metadata", false},
		{"pro", "x-amzn-bedrock-projectidentifier", false},
		{"pro", "x-amzn-bedrock-something-new", false},
		{"", "x-amzn-bedrock-service-tier", false},
		// other headers are not this rule's business
		{"pro", "content-type", true},
		{"pro", "x-amzn-trace-id", true},
		// a tier's own list replaces the default
		{"priority", "x-amzn-bedrock-service-tier", true},
		{"priority", "x-amzn-bedrock-accept", true},
		{"priority", "x-amzn-bedrock-trace", false},
		{"locked", "x-amzn-bedrock-accept", false},
		{"locked", "accept", true},
		{"own_bill", "x-amzn-bedrock-guardrailidentifier", true},
	}
	for _, tt := range tests {
		if got := c.BedrockHeaderAllowed(tt.tier, tt.header); got != tt.want {
			t.Errorf("BedrockHeaderAllowed(%q, %q) = %v, want %v", tt.tier, tt.header, got, tt.want)
		}
	}
}

func TestBedrockHeaderPolicy(t *testing.T) {
	tests := []struct {
		name       string
		cfg        config.Plans
		wantErr    bool
		wantReject bool
	}{
		{"strip", config.Plans{UnlistedBedrockHeaders: config.UnlistedBedrockHeadersStrip}, false, false},
		{"unset strips", config.Plans{}, false, false},
		{"reject", config.Plans{UnlistedBedrockHeaders: config.UnlistedBedrockHeadersReject}, false, true},
		{"bad default name", config.Plans{DefaultBedrockHeaders: []string{"x-amz-security-token"}}, true, false},
		{"bad tier name", config.Plans{BedrockHeaders: map[string][]string{"t": {"x-amzn-bedrock-*"}}}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && c.RejectUnlistedBedrockHeaders() != tt.wantReject {
				t.Fatalf("reject %v", c.RejectUnlistedBedrockHeaders())
			}
		})
	}
	// Without a default list (config defaults not applied) nothing is allowed.
	if mustNew(t, config.Plans{}).BedrockHeaderAllowed("pro", "x-amzn-bedrock-trace") {
		t.Fatal("empty plans allow a bedrock header")
	}
}
