package extproc

import (
	"context"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	dto "github.com/prometheus/client_model/go"
)

func respHeadersMsg(eos bool, hs ...hdr) *extprocv3.ProcessingRequest {
	hm := &corev3.HeaderMap{}
	for _, h := range hs {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: h.k, RawValue: []byte(h.v)})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hm, EndOfStream: eos},
	}}
}

func respBodyMsg(b string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: true},
	}}
}

// TestRequestRepliesAskForResponseHeaders: every reply that lets a request
// go upstream asks for the response headers and keeps its own body mode;
// rejections are left alone.
func TestRequestRepliesAskForResponseHeaders(t *testing.T) {
	cases := []struct {
		name     string
		id       bool
		eos      bool
		wantBody filterv3.ProcessingMode_BodySendMode
		wantNone bool
	}{
		{"signed without body", true, true, filterv3.ProcessingMode_NONE, false},
		{"body awaited", true, false, filterv3.ProcessingMode_BUFFERED, false},
		{"rejected", false, false, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
			id := proID
			if !tc.id {
				id = nil
			}
			resp := s.handle(context.Background(), &streamState{}, headersMsg(id, tc.eos, clientHeaders("POST", haikuPath)...))
			if tc.wantNone {
				if resp.GetImmediateResponse() == nil || resp.GetModeOverride() != nil {
					t.Fatalf("rejection changed: %v", resp)
				}
				return
			}
			m := resp.GetModeOverride()
			if m.GetResponseHeaderMode() != filterv3.ProcessingMode_SEND || m.GetRequestBodyMode() != tc.wantBody ||
				m.GetResponseBodyMode() != filterv3.ProcessingMode_NONE {
				t.Fatalf("mode override %v", m)
			}
		})
	}
}

func TestResponseHeaders(t *testing.T) {
	cases := []struct {
		name       string
		hs         []hdr
		eos        bool
		wantBuffer bool
		wantSet    map[string]string
	}{
		{"ok json", []hdr{{":status", "200"}, {"content-type", "application/json"}}, false, false, nil},
		{"ok stream", []hdr{{":status", "200"}, {"content-type", "application/vnd.amazon.eventstream"}}, false, false, nil},
		{"redirect", []hdr{{":status", "307"}, {"location", "arn:aws:iam::111122223333:role/x"}}, false, false, nil},
		{"access denied", []hdr{{":status", "403"}, {"x-amzn-errortype", "AccessDeniedException"}}, false, true, nil},
		{"throttled", []hdr{{":status", "429"}}, false, true, nil},
		{"server error", []hdr{{":status", "503"}}, false, true, nil},
		{"error without body", []hdr{{":status", "404"}}, true, false, nil},
		{"error header names a role", []hdr{{":status", "400"}, {"x-amzn-errormessage", "arn:aws:sts::111122223333:assumed-role/R/s denied"}, {"content-length", "111122223333"}},
			false, true, map[string]string{"x-amzn-errormessage": "[redacted] denied"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
			st := &streamState{}
			resp := s.handle(context.Background(), st, respHeadersMsg(tc.eos, tc.hs...))
			if resp.GetResponseHeaders() == nil {
				t.Fatalf("reply %v", resp)
			}
			buffered := resp.GetModeOverride().GetResponseBodyMode() == filterv3.ProcessingMode_BUFFERED
			if buffered != tc.wantBuffer || st.response.scrub != tc.wantBuffer {
				t.Fatalf("buffered %v scrub %v, want %v", buffered, st.response.scrub, tc.wantBuffer)
			}
			got := map[string]string{}
			for _, h := range resp.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
				got[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
			}
			if len(got) != len(tc.wantSet) {
				t.Fatalf("set headers %v, want %v", got, tc.wantSet)
			}
			for k, v := range tc.wantSet {
				if got[k] != v {
					t.Fatalf("set headers %v, want %v", got, tc.wantSet)
				}
			}
		})
	}
}

func TestResponseBody(t *testing.T) {
	denied := `{"message":"User: arn:aws:sts::111122223333:assumed-role/TenantRole/s is not authorized to perform: bedrock:InvokeModel"}`
	cases := []struct {
		name      string
		hs        []hdr
		body      string
		wantBody  string // "" = no body mutation
		wantLabel string
		wantCE    bool // content-encoding removed
	}{
		{"scrubbed", []hdr{{":status", "403"}}, denied,
			`{"message":"User: [redacted] is not authorized to perform: bedrock:InvokeModel"}`, "scrubbed", false},
		{"nothing to scrub", []hdr{{":status", "429"}}, `{"message":"Too many requests, please wait before trying again."}`, "", "unchanged", false},
		{"compressed", []hdr{{":status", "403"}, {"content-encoding", "gzip"}}, "\x1f\x8b binary",
			`{"message":"` + encodedErrorMessage + `"}`, "replaced", true},
		{"success body never requested", []hdr{{":status", "200"}}, denied, "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
			st := &streamState{}
			s.handle(context.Background(), st, respHeadersMsg(false, tc.hs...))
			resp := s.handle(context.Background(), st, respBodyMsg(tc.body))
			cr := resp.GetResponseBody().GetResponse()
			if resp.GetResponseBody() == nil {
				t.Fatalf("reply %v", resp)
			}
			got := string(cr.GetBodyMutation().GetBody())
			if got != tc.wantBody {
				t.Fatalf("body %q, want %q", got, tc.wantBody)
			}
			if tc.wantBody != "" {
				sets := cr.GetHeaderMutation().GetSetHeaders()
				if len(sets) != 1 || sets[0].GetHeader().GetKey() != "content-length" || string(sets[0].GetHeader().GetRawValue()) != strconv.Itoa(len(got)) {
					t.Fatalf("header mutation %v", cr.GetHeaderMutation())
				}
				if strings.Contains(got, "111122223333") || strings.Contains(got, "TenantRole") {
					t.Fatalf("leak: %s", got)
				}
			}
			if rm := cr.GetHeaderMutation().GetRemoveHeaders(); (len(rm) == 1 && rm[0] == "content-encoding") != tc.wantCE {
				t.Fatalf("removed %v", rm)
			}
			if tc.wantLabel != "" {
				var m dto.Metric
				if err := s.errorBodies.WithLabelValues(tc.wantLabel).Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
					t.Fatalf("metric %s = %v (%v)", tc.wantLabel, m.GetCounter().GetValue(), err)
				}
			}
		})
	}
}
