package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestBedrockHeaderConfig(t *testing.T) {
	tests := []struct {
		name        string
		yaml        string
		wantErr     string
		wantDefault []string
		wantPolicy  string
	}{
		{"defaults", "", "", []string{"x-amzn-bedrock-accept", "x-amzn-bedrock-trace"}, UnlistedBedrockHeadersStrip},
		{"explicitly none", "plans: {default_bedrock_headers: []}", "", []string{}, UnlistedBedrockHeadersStrip},
		{"per tier and reject", "plans: {bedrock_headers: {priority: [X-Amzn-Bedrock-Service-Tier, '*']}, unlisted_bedrock_headers: reject}", "",
			[]string{"x-amzn-bedrock-accept", "x-amzn-bedrock-trace"}, UnlistedBedrockHeadersReject},
		{"not a bedrock header", "plans: {default_bedrock_headers: [x-amz-security-token]}", `plans.default_bedrock_headers: "x-amz-security-token" is not`, nil, ""},
		{"prefix only", "plans: {bedrock_headers: {t: [x-amzn-bedrock-]}}", `plans.bedrock_headers.t: "x-amzn-bedrock-" is not`, nil, ""},
		{"glob is not a name", "plans: {bedrock_headers: {t: ['x-amzn-bedrock-*']}}", `plans.bedrock_headers.t: "x-amzn-bedrock-*" is not`, nil, ""},
		{"unknown policy", "plans: {unlisted_bedrock_headers: drop}", `plans.unlisted_bedrock_headers: "drop" is not strip or reject`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Plans.DefaultBedrockHeaders, tt.wantDefault) || c.Plans.UnlistedBedrockHeaders != tt.wantPolicy {
				t.Fatalf("default %#v policy %q", c.Plans.DefaultBedrockHeaders, c.Plans.UnlistedBedrockHeaders)
			}
		})
	}
	// The defaults are a copy: changing a loaded config leaves them alone.
	c, _ := Parse(nil, nil)
	c.Plans.DefaultBedrockHeaders[0] = "x-amzn-bedrock-service-tier"
	if DefaultBedrockHeaders[0] != "x-amzn-bedrock-accept" {
		t.Fatal("DefaultBedrockHeaders was modified through a config")
	}
}
