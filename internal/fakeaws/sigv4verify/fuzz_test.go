package sigv4verify

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	f.Add("Bearer x")
	f.Add("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;, Signature=")
	f.Add("AWS4-HMAC-SHA256 ,,,=,=")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuthorization(s)
		if err != nil {
			if kindOf(err) == 0 {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if a.AccessKeyID == "" || len(a.Signature) != 64 || len(a.SignedHeaders) == 0 || a.Terminator != "aws4_request" {
			t.Fatalf("accepted incomplete header %q -> %+v", s, a)
		}
	})
}

// FuzzVerify feeds arbitrary requests to the verifier. The only credential
// has a secret the fuzzer cannot know the signatures for, so nothing may be
// accepted, and nothing may panic.
func FuzzVerify(f *testing.F) {
	f.Add("GET", "/", "", "example.amazonaws.com", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf30", "20150830T123600Z", "", []byte(""))
	f.Add("POST", "/model/a%3Ab/converse", "x=1&y", "bedrock-runtime.us-east-1.amazonaws.com", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=0000000000000000000000000000000000000000000000000000000000000000", "20150830T123600Z", "tok", []byte("{}"))
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	ver := &Verifier{
		Service:     "service",
		Credentials: staticCreds{"AKIDEXAMPLE": {AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}},
		Now:         func() time.Time { return now },
	}
	f.Fuzz(func(t *testing.T, method, path, query, host, authz, date, token string, body []byte) {
		h := http.Header{}
		h.Set("Authorization", authz)
		h.Set("X-Amz-Date", date)
		h.Set("Content-Type", "application/json")
		if token != "" {
			h.Set("X-Amz-Security-Token", token)
		}
		req := Request{Method: method, RawPath: path, RawQuery: query, Host: host, Header: h, Body: body}
		res, err := ver.Verify(context.Background(), req, "us-east-1")
		if err == nil {
			t.Fatalf("accepted a fuzzed request: %+v", res.Authorization)
		}
		if kindOf(err) == 0 {
			t.Fatalf("untyped error %v", err)
		}
		if strings.Contains(err.Error(), "wJalrXUtnFEMI") {
			t.Fatal("secret in error")
		}
		_ = CanonicalURI(path, true)
		_ = CanonicalQuery(query)
	})
}
