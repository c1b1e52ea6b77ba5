package sigv4verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestSDKSignerRoundTrip signs real requests with aws-sdk-go-v2's v4 signer,
// sends them over HTTP and verifies them on the server side as received.
func TestSDKSignerRoundTrip(t *testing.T) {
	now := time.Now().UTC()
	creds := staticCreds{
		"AKIAPLATFORMEXAMPLE01": {AccessKeyID: "AKIAPLATFORMEXAMPLE01", SecretAccessKey: "platformSecretKeyExample0000000000000000", PrincipalARN: "arn:aws:iam::111122223333:user/platform"},
		"ASIATEMPEXAMPLE00001":  {AccessKeyID: "ASIATEMPEXAMPLE00001", SecretAccessKey: "tempSecret", SessionToken: "session-token-1", Expiration: now.Add(time.Hour), PrincipalARN: "arn:aws:sts::111122223333:assumed-role/R/s"},
		"ASIAEXPIREDEXAMPLE01":  {AccessKeyID: "ASIAEXPIREDEXAMPLE01", SecretAccessKey: "tempSecret2", SessionToken: "session-token-2", Expiration: now.Add(-time.Second)},
	}
	ver := &Verifier{Service: "bedrock", Credentials: creds}

	var mu sync.Mutex
	var lastErr error
	var lastRes *Result
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := ver.Verify(r.Context(), FromHTTP(r, body), "us-east-1")
		mu.Lock()
		lastErr, lastRes = err, res
		mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	signer := v4.NewSigner()
	static := aws.Credentials{AccessKeyID: "AKIAPLATFORMEXAMPLE01", SecretAccessKey: "platformSecretKeyExample0000000000000000"}
	temp := aws.Credentials{AccessKeyID: "ASIATEMPEXAMPLE00001", SecretAccessKey: "tempSecret", SessionToken: "session-token-1"}

	type tc struct {
		name       string
		path       string // escaped path as the SDK sends it
		query      string
		body       string
		creds      aws.Credentials
		region     string
		service    string
		signTime   time.Time
		afterSign  func(r *http.Request)
		payloadHdr bool
		wantKind   Kind // 0 = accepted
	}
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	cases := []tc{
		{name: "converse static", path: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", body: body, creds: static},
		{name: "converse temp", path: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", body: body, creds: temp},
		{name: "inference profile arn", path: "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A111122223333%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse", body: body, creds: static},
		{name: "query", path: "/async-invoke", query: "maxResults=10&statusEquals=Completed&nextToken=a%2Fb%3D", creds: static},
		{name: "payload hash header", path: "/model/m/invoke", body: body, creds: static, payloadHdr: true},
		{name: "unsigned header added later", path: "/model/m/invoke", body: body, creds: static, afterSign: func(r *http.Request) {
			r.Header.Set("X-Forwarded-For", "10.0.0.1")
		}},
		{name: "tampered body", path: "/model/m/invoke", body: body, creds: static, afterSign: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(strings.Replace(body, "hi", "ho", 1)))
		}, wantKind: KindSignatureMismatch},
		{name: "tampered path encoding", path: "/model/a%3Ab/converse", body: body, creds: static, afterSign: func(r *http.Request) {
			r.URL.RawPath = "/model/a:b/converse"
			r.URL.Path = "/model/a:b/converse"
		}, wantKind: KindSignatureMismatch},
		{name: "tampered signed header", path: "/model/m/invoke", body: body, creds: static, afterSign: func(r *http.Request) {
			r.Header.Set("Content-Type", "text/plain")
		}, wantKind: KindSignatureMismatch},
		{name: "wrong region", path: "/model/m/invoke", body: body, creds: static, region: "eu-west-1", wantKind: KindSignatureMismatch},
		{name: "wrong service", path: "/model/m/invoke", body: body, creds: static, service: "sts", wantKind: KindSignatureMismatch},
		{name: "stale", path: "/model/m/invoke", body: body, creds: static, signTime: now.Add(-10 * time.Minute), wantKind: KindSignatureExpired},
		{name: "missing token", path: "/model/m/invoke", body: body, creds: aws.Credentials{AccessKeyID: temp.AccessKeyID, SecretAccessKey: temp.SecretAccessKey}, wantKind: KindInvalidToken},
		{name: "token with long-term key", path: "/model/m/invoke", body: body, creds: aws.Credentials{AccessKeyID: static.AccessKeyID, SecretAccessKey: static.SecretAccessKey, SessionToken: "x"}, wantKind: KindInvalidToken},
		{name: "expired temp", path: "/model/m/invoke", body: body, creds: aws.Credentials{AccessKeyID: "ASIAEXPIREDEXAMPLE01", SecretAccessKey: "tempSecret2", SessionToken: "session-token-2"}, wantKind: KindExpiredToken},
		{name: "unknown key", path: "/model/m/invoke", body: body, creds: aws.Credentials{AccessKeyID: "AKIAUNKNOWN000000000", SecretAccessKey: "x"}, wantKind: KindUnknownKey},
		{name: "bearer instead", path: "/model/m/invoke", body: body, creds: static, afterSign: func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer abc.def.ghi")
		}, wantKind: KindIncomplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := srv.URL + c.path
			if c.query != "" {
				u += "?" + c.query
			}
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, u, bytes.NewReader([]byte(c.body)))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "bedrock-runtime.us-east-1.amazonaws.com"
			req.Header.Set("Content-Type", "application/json")
			sum := sha256.Sum256([]byte(c.body))
			hash := hex.EncodeToString(sum[:])
			if c.payloadHdr {
				req.Header.Set("X-Amz-Content-Sha256", hash)
			}
			region, service, st := c.region, c.service, c.signTime
			if region == "" {
				region = "us-east-1"
			}
			if service == "" {
				service = "bedrock"
			}
			if st.IsZero() {
				st = time.Now()
			}
			if err := signer.SignHTTP(context.Background(), c.creds, req, hash, service, region, st); err != nil {
				t.Fatal(err)
			}
			if c.afterSign != nil {
				c.afterSign(req)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			mu.Lock()
			err, res := lastErr, lastRes
			mu.Unlock()
			if c.wantKind == 0 {
				if err != nil {
					var e *Error
					errors.As(err, &e)
					t.Fatalf("rejected: %v\n%s", err, e.CanonicalRequest)
				}
				if res.Credential.AccessKeyID != c.creds.AccessKeyID {
					t.Fatalf("access key = %q", res.Credential.AccessKeyID)
				}
				if strings.Contains(res.CanonicalRequest, "session-token-1") {
					t.Fatalf("session token not redacted in canonical request")
				}
				return
			}
			if got := kindOf(err); got != c.wantKind {
				t.Fatalf("kind = %v, want %v (err %v)", got, c.wantKind, err)
			}
			if err != nil && (strings.Contains(err.Error(), c.creds.SecretAccessKey) || (c.creds.SessionToken != "" && strings.Contains(err.Error(), c.creds.SessionToken))) {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	good := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	cases := []struct {
		name string
		in   string
		kind Kind
	}{
		{"good", good, 0},
		{"no spaces after commas", strings.ReplaceAll(good, ", ", ","), 0},
		{"empty", "", KindMissingAuth},
		{"bearer", "Bearer xyz", KindIncomplete},
		{"sigv2", "AWS AKID:sig", KindIncomplete},
		{"no credential", "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" + strings.Repeat("a", 64), KindIncomplete},
		{"no signature", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host", KindIncomplete},
		{"no signed headers", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, Signature=" + strings.Repeat("a", 64), KindIncomplete},
		{"short credential", strings.Replace(good, "/service/aws4_request", "/aws4_request", 1), KindIncomplete},
		{"bad terminator", strings.Replace(good, "aws4_request", "aws4_reqest", 1), KindIncomplete},
		{"bad date", strings.Replace(good, "20150830", "2015083", 1), KindIncomplete},
		{"uppercase signed header", strings.Replace(good, "host;x-amz-date", "Host;x-amz-date", 1), KindIncomplete},
		{"unsorted signed headers", strings.Replace(good, "host;x-amz-date", "x-amz-date;host", 1), KindIncomplete},
		{"duplicate signed header", strings.Replace(good, "host;x-amz-date", "host;host", 1), KindIncomplete},
		{"empty signed header", strings.Replace(good, "host;x-amz-date", "host;;x-amz-date", 1), KindIncomplete},
		{"short signature", good[:len(good)-1], KindIncomplete},
		{"uppercase signature", strings.Replace(good, "5fa00fa", "5FA00FA", 1), KindIncomplete},
		{"duplicate credential", good + ", Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request", KindIncomplete},
		{"unknown param", good + ", Foo=bar", KindIncomplete},
		{"no equals", good + ", Foo", KindIncomplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := ParseAuthorization(c.in)
			if c.kind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if a.AccessKeyID != "AKIDEXAMPLE" || a.Region != "us-east-1" || a.Service != "service" || len(a.SignedHeaders) != 2 || a.Scope() != "20150830/us-east-1/service/aws4_request" {
					t.Fatalf("parsed %+v", a)
				}
				return
			}
			if got := kindOf(err); got != c.kind {
				t.Fatalf("kind = %v, want %v (%v)", got, c.kind, err)
			}
		})
	}
}

func TestCanonicalURIAndQuery(t *testing.T) {
	uris := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/model/a%3Ab/converse", "/model/a%253Ab/converse"},
		{"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/converse", "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A1%253Ainference-profile%252Fx/converse"},
		{"//a//b/", "/a/b/"},
		{"/a/./b/../c", "/a/c"},
		{"/a b", "/a%20b"},
	}
	for _, u := range uris {
		if got := CanonicalURI(u.in, true); got != u.want {
			t.Errorf("CanonicalURI(%q) = %q, want %q", u.in, got, u.want)
		}
	}
	if got := CanonicalURI("//a/./b", false); got != "//a/./b" {
		t.Errorf("unnormalized = %q", got)
	}
	qs := []struct{ in, want string }{
		{"", ""},
		{"b=2&a=1", "a=1&b=2"},
		{"a=2&a=1", "a=1&a=2"},
		{"k=a%2Fb%3D", "k=a%2Fb%3D"},
		{"k=a/b", "k=a%2Fb"},
		{"flag", "flag="},
		{"k=%zz", "k=%25zz"},
	}
	for _, q := range qs {
		if got := CanonicalQuery(q.in); got != q.want {
			t.Errorf("CanonicalQuery(%q) = %q, want %q", q.in, got, q.want)
		}
	}
}
