package sigv4sign

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// FuzzSign: arbitrary paths and header values never panic; a signed request
// always names its credential scope and never signs content-length.
func FuzzSign(f *testing.F) {
	f.Add("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "content-length", "12")
	f.Add("GET", "/async-invoke?maxResults=1&nextToken=a%2Fb", "accept", "*/*")
	f.Add("GET", "/a?b=%zz", "x-amzn-bedrock-x", "  a   b ")
	f.Add("GET", "relative", "content-type", "x")
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "tok"}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, method, path, hk, hv string) {
		res, err := New("bedrock").Sign(context.Background(), creds, "us-east-1", Request{
			Method: method, Host: "bedrock-runtime.us-east-1.amazonaws.com", Path: path,
			Header: map[string][]string{strings.ToLower(hk): {hv}, "content-length": {"5"}}, PayloadHash: PayloadHash([]byte(hv)),
		}, at)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if !strings.HasPrefix(res.Authorization, "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=") {
			t.Fatalf("authorization %q", res.Authorization)
		}
		for _, h := range res.SignedHeaders {
			if h == "content-length" || h == "authorization" {
				t.Fatalf("signed %s", h)
			}
		}
		if res.SecurityToken != "tok" || res.AmzDate != "20260101T000000Z" {
			t.Fatalf("result %+v", res)
		}
	})
}
