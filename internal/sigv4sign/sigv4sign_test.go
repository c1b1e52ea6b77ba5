package sigv4sign

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

const suiteDir = "/work/shared/aws-sig-v4-test-suite"

type suiteContext struct {
	Credentials struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		Token           string `json:"token"`
	} `json:"credentials"`
	Region    string `json:"region"`
	Service   string `json:"service"`
	Timestamp string `json:"timestamp"`
}

// TestAWSSuite checks the signer against the public AWS SigV4 vectors whose
// requests carry only headers tenantgate signs.
func TestAWSSuite(t *testing.T) {
	cases := []string{
		"get-vanilla",
		"get-vanilla-with-session-token",
		"get-vanilla-query-order-key-case",
		"get-vanilla-query-unreserved",
		"get-vanilla-empty-query-key",
		"get-unreserved",
		"post-vanilla",
		"post-vanilla-empty-query-value",
	}
	if _, err := os.Stat(suiteDir); err != nil {
		t.Skipf("suite not available: %v", err)
	}
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(suiteDir, name)
			var c suiteContext
			b, err := os.ReadFile(filepath.Join(dir, "context.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			ts, err := time.Parse(time.RFC3339, c.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			reqText, err := os.ReadFile(filepath.Join(dir, "request.txt"))
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(strings.NewReader(string(reqText)))
			sc.Scan()
			parts := strings.Fields(sc.Text())
			method, path := parts[0], parts[1]
			host := ""
			hdr := map[string][]string{}
			for sc.Scan() {
				line := sc.Text()
				if line == "" {
					break
				}
				k, v, _ := strings.Cut(line, ":")
				if strings.EqualFold(k, "host") {
					host = v
					continue
				}
				hdr[strings.ToLower(k)] = append(hdr[strings.ToLower(k)], v)
			}
			want, err := os.ReadFile(filepath.Join(dir, "header-signature.txt"))
			if err != nil {
				t.Fatal(err)
			}
			creds := aws.Credentials{AccessKeyID: c.Credentials.AccessKeyID, SecretAccessKey: c.Credentials.SecretAccessKey, SessionToken: c.Credentials.Token}
			res, err := New(c.Service).Sign(context.Background(), creds, c.Region, Request{Method: method, Host: host, Path: path, Header: hdr}, ts)
			if err != nil {
				t.Fatal(err)
			}
			got := res.Authorization[strings.LastIndex(res.Authorization, "Signature=")+len("Signature="):]
			if got != strings.TrimSpace(string(want)) {
				t.Fatalf("signature %s, want %s (auth %s)", got, want, res.Authorization)
			}
			if res.AmzDate != "20150830T123600Z" {
				t.Fatalf("x-amz-date %q", res.AmzDate)
			}
			if res.SecurityToken != c.Credentials.Token {
				t.Fatalf("security token %q, want %q", res.SecurityToken, c.Credentials.Token)
			}
		})
	}
}

// reference computes a SigV4 signature independently of the SDK, from the
// canonical request AWS documents for non-S3 services.
func reference(creds aws.Credentials, service, region, method, canonicalURI, canonicalQuery string, headers map[string]string, payloadHash string, t time.Time) (signedHeaders, signature string) {
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	var ch strings.Builder
	for _, n := range names {
		ch.WriteString(n + ":" + headers[n] + "\n")
	}
	signedHeaders = strings.Join(names, ";")
	creq := strings.Join([]string{method, canonicalURI, canonicalQuery, ch.String(), signedHeaders, payloadHash}, "\n")
	sum := sha256.Sum256([]byte(creq))
	date := t.UTC().Format("20060102")
	scope := date + "/" + region + "/" + service + "/aws4_request"
	sts := "AWS4-HMAC-SHA256\n" + t.UTC().Format("20060102T150405Z") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	mac := func(k []byte, s string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(s)); return h.Sum(nil) }
	k := mac([]byte("AWS4"+creds.SecretAccessKey), date)
	k = mac(k, region)
	k = mac(k, service)
	k = mac(k, "aws4_request")
	return signedHeaders, hex.EncodeToString(mac(k, sts))
}

func TestBedrockPaths(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIDTENANT", SecretAccessKey: "tenant-secret", SessionToken: "tok123"}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"messages":[]}`)
	cases := []struct {
		name, method, path, canonicalURI, canonicalQuery string
		hdr                                              map[string][]string
		body                                             []byte
		wantSigned                                       string
	}{
		{
			name: "model id with colon", method: "POST",
			path:         "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
			canonicalURI: "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse",
			hdr: map[string][]string{
				"content-type": {"application/json"}, "content-length": {"15"}, "user-agent": {"x"},
				"x-forwarded-for": {"1.2.3.4"}, "x-request-id": {"abc"}, "x-envoy-expected-rq-timeout-ms": {"1"},
				"accept": {"application/json"}, "x-amzn-bedrock-trace": {"ENABLED"},
			},
			body:       body,
			wantSigned: "accept;content-type;host;x-amz-date;x-amz-security-token;x-amzn-bedrock-trace",
		},
		{
			name: "inference profile arn", method: "POST",
			path:         "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
			canonicalURI: "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253Ainference-profile%252Fus.anthropic.claude-3-haiku-20240307-v1%253A0/converse-stream",
			hdr:          map[string][]string{"content-type": {"application/json"}},
			body:         body,
			wantSigned:   "content-type;host;x-amz-date;x-amz-security-token",
		},
		{
			name: "get with query", method: "GET",
			path: "/async-invoke?maxResults=10&nextToken=a%2Fb", canonicalURI: "/async-invoke",
			canonicalQuery: "maxResults=10&nextToken=a%2Fb",
			wantSigned:     "host;x-amz-date;x-amz-security-token",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hash := ""
			if tc.body != nil {
				hash = PayloadHash(tc.body)
			}
			res, err := New("bedrock").Sign(context.Background(), creds, "eu-west-1", Request{
				Method: tc.method, Host: "bedrock-runtime.eu-west-1.amazonaws.com", Path: tc.path, Header: tc.hdr, PayloadHash: hash,
			}, at)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(res.SignedHeaders, ";") != tc.wantSigned {
				t.Fatalf("signed headers %v, want %s", res.SignedHeaders, tc.wantSigned)
			}
			refHeaders := map[string]string{
				"host": "bedrock-runtime.eu-west-1.amazonaws.com", "x-amz-date": "20260301T100000Z", "x-amz-security-token": "tok123",
			}
			for _, n := range res.SignedHeaders {
				if v, ok := tc.hdr[n]; ok {
					refHeaders[n] = v[0]
				}
			}
			ph := hash
			if ph == "" {
				ph = EmptyPayloadHash
			}
			sh, sig := reference(creds, "bedrock", "eu-west-1", tc.method, tc.canonicalURI, tc.canonicalQuery, refHeaders, ph, at)
			want := "AWS4-HMAC-SHA256 Credential=AKIDTENANT/20260301/eu-west-1/bedrock/aws4_request, SignedHeaders=" + sh + ", Signature=" + sig
			if res.Authorization != want {
				t.Fatalf("authorization\n got %s\nwant %s", res.Authorization, want)
			}
		})
	}
}

func TestRejects(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S"}
	for _, tc := range []struct {
		name, host, path string
		hdr              map[string][]string
	}{
		{"relative path", "h.example", "model/x/converse", nil},
		{"empty host", "", "/x", nil},
		{"host with slash", "h/x", "/x", nil},
		{"bad query", "h.example", "/x?a=%zz", nil},
		{"space in path", "h.example", "/a b", nil},
		{"tab in signed header", "h.example", "/x", map[string][]string{"accept": {"a\tb"}}},
		{"non-ascii in signed header", "h.example", "/x", map[string][]string{"x-amzn-bedrock-trace": {"a\u00a0b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("bedrock").Sign(context.Background(), creds, "us-east-1", Request{Method: "GET", Host: tc.host, Path: tc.path, Header: tc.hdr}, time.Now())
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
		})
	}
}

func TestSignable(t *testing.T) {
	for name, want := range map[string]bool{
		"content-type": true, "accept": true, "x-amzn-bedrock-guardrailidentifier": true,
		"content-length": false, "user-agent": false, "x-forwarded-for": false, "x-request-id": false,
		"x-envoy-original-path": false, "te": false, "transfer-encoding": false, "authorization": false,
		"x-amz-date": false, "x-amz-security-token": false, "cookie": false,
	} {
		if got := Signable(name); got != want {
			t.Errorf("Signable(%q) = %v, want %v", name, got, want)
		}
	}
}
