package bedrockpath

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, method, path string
		op                 Operation
		model              string
		streaming          bool
		wantErr            bool
	}{
		{"converse with colon", "POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", Converse, "anthropic.claude-3-haiku-20240307-v1:0", false, false},
		{"converse raw colon", "POST", "/model/anthropic.claude-v2:1/converse", Converse, "anthropic.claude-v2:1", false, false},
		{"stream", "POST", "/model/m/converse-stream", ConverseStream, "m", true, false},
		{"invoke", "POST", "/model/m/invoke", InvokeModel, "m", false, false},
		{"invoke stream", "POST", "/model/m/invoke-with-response-stream", InvokeModelWithResponseStream, "m", true, false},
		{"bidi", "POST", "/model/m/invoke-with-bidirectional-stream", InvokeModelWithBidirectionalStream, "m", true, false},
		{"count tokens", "POST", "/model/m/count-tokens", CountTokens, "m", false, false},
		{"profile arn", "POST", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse", Converse, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0", false, false},
		{"query ignored", "POST", "/model/m/converse?x=1", Converse, "m", false, false},
		{"guardrail", "POST", "/guardrail/gr1/version/DRAFT/apply", ApplyGuardrail, "", false, false},
		{"async start", "POST", "/async-invoke", StartAsyncInvoke, "", false, false},
		{"async list", "GET", "/async-invoke?maxResults=3", ListAsyncInvokes, "", false, false},
		{"async get", "GET", "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aasync-invoke%2Fabc", GetAsyncInvoke, "", false, false},
		{"get on model", "GET", "/model/m/converse", "", "", false, true},
		{"unknown action", "POST", "/model/m/train", "", "", false, true},
		{"extra segment", "POST", "/model/m/converse/x", "", "", false, true},
		{"dotdot", "POST", "/model/../converse", "", "", false, true},
		{"double slash", "POST", "//model/m/converse", "", "", false, true},
		{"empty model", "POST", "/model//converse", "", "", false, true},
		{"bad escape", "POST", "/model/%zz/converse", "", "", false, true},
		{"control char", "POST", "/model/a%0Ab/converse", "", "", false, true},
		{"relative", "POST", "model/m/converse", "", "", false, true},
		{"root", "GET", "/", "", "", false, true},
		{"control plane api", "GET", "/foundation-models", "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.method, tt.path)
			if tt.wantErr {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Parse(%q, %q) err = %v, want ErrUnsupported", tt.method, tt.path, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", tt.method, tt.path, err)
			}
			if got.Op != tt.op || got.ModelID != tt.model || got.Streaming != tt.streaming {
				t.Fatalf("Parse(%q, %q) = %+v, want op=%s model=%q streaming=%v", tt.method, tt.path, got, tt.op, tt.model, tt.streaming)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/model/a%3Ab/converse", "/guardrail/g/version/1/apply", "/async-invoke/x", "/model/%2F/invoke?q"} {
		f.Add("POST", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		got, err := Parse(method, path)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error not ErrUnsupported: %v", err)
			}
			return
		}
		if got.Op == "" {
			t.Fatalf("nil op without error")
		}
		if (got.ModelID != "") != (len(got.RawPath) > 7 && got.RawPath[:7] == "/model/") {
			t.Fatalf("model id presence mismatch: %+v", got)
		}
	})
}
