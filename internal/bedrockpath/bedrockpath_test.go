package bedrockpath

import (
	"errors"
	"net/url"
	"strings"
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
		{"list foundation models", "GET", "/foundation-models?byProvider=Anthropic", ListFoundationModels, "", false, false},
		{"get foundation model", "GET", "/foundation-models/anthropic.claude-3-haiku-20240307-v1%3A0", GetFoundationModel, "anthropic.claude-3-haiku-20240307-v1:0", false, false},
		{"list inference profiles", "GET", "/inference-profiles?type=SYSTEM_DEFINED&maxResults=5", ListInferenceProfiles, "", false, false},
		{"get inference profile id", "GET", "/inference-profiles/us.anthropic.claude-3-haiku-20240307-v1%3A0", GetInferenceProfile, "us.anthropic.claude-3-haiku-20240307-v1:0", false, false},
		{"get inference profile arn", "GET", "/inference-profiles/arn%3Aaws%3Abedrock%3Aeu-west-1%3A111122223333%3Aapplication-inference-profile%2Fabc", GetInferenceProfile, "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/abc", false, false},
		{"create inference profile", "POST", "/inference-profiles", "", "", false, true},
		{"delete inference profile", "DELETE", "/inference-profiles/abc", "", "", false, true},
		{"control plane extra segment", "GET", "/foundation-models/m/x", "", "", false, true},
		{"control plane empty id", "GET", "/foundation-models/", "", "", false, true},
		{"control plane bad escape", "GET", "/inference-profiles/%zz", "", "", false, true},
		{"other control plane api", "GET", "/custom-models", "", "", false, true},
		{"other collection", "GET", "/inference-profile/abc", "", "", false, true},
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
		if got.Op.ControlPlane() {
			return // FuzzParseControlPlane
		}
		if (got.ModelID != "") != (len(got.RawPath) > 7 && got.RawPath[:7] == "/model/") {
			t.Fatalf("model id presence mismatch: %+v", got)
		}
	})
}

// FuzzParseControlPlane: only GET of the two read-only collections or one
// of their members parses as a control-plane operation; a member's id is
// the decoded single segment, without control characters.
func FuzzParseControlPlane(f *testing.F) {
	for _, s := range []string{"/inference-profiles", "/inference-profiles/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fa",
		"/foundation-models?byProvider=x", "/foundation-models/a%3Ab", "/foundation-models/%2F..", "/inference-profiles/a/b"} {
		f.Add("GET", s)
	}
	f.Add("POST", "/inference-profiles")
	f.Fuzz(func(t *testing.T, method, path string) {
		got, err := Parse(method, path)
		if err != nil || !got.Op.ControlPlane() {
			return
		}
		if method != "GET" {
			t.Fatalf("%s parsed as %s", method, got.Op)
		}
		segs := strings.Split(got.RawPath, "/")
		if segs[0] != "" || (segs[1] != "inference-profiles" && segs[1] != "foundation-models") || len(segs) > 3 {
			t.Fatalf("path %q parsed as %s", got.RawPath, got.Op)
		}
		isGet := got.Op == GetInferenceProfile || got.Op == GetFoundationModel
		if isGet != (len(segs) == 3) || isGet != (got.ModelID != "") {
			t.Fatalf("get/list mismatch for %q: %+v", path, got)
		}
		if isGet {
			dec, derr := url.PathUnescape(segs[2])
			if derr != nil || dec != got.ModelID {
				t.Fatalf("model id %q is not the decoded segment %q", got.ModelID, segs[2])
			}
			if strings.ContainsFunc(got.ModelID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("control character in %q", got.ModelID)
			}
		}
	})
}
