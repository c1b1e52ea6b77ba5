package extproc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/plan"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeRoutes struct {
	mu     sync.Mutex
	routes map[string]tenant.Route
	err    error
}

func (f *fakeRoutes) Route(_ context.Context, id string) (tenant.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return tenant.Route{}, f.err
	}
	r, ok := f.routes[id]
	if !ok {
		return tenant.Route{}, tenant.ErrNotFound
	}
	return r, nil
}

// fakeCreds issues per-account credentials: key id ASIA<account>.
type fakeCreds struct {
	err   error
	mu    sync.Mutex
	calls []string // region per call
}

func (f *fakeCreds) Credentials(_ context.Context, r tenant.Route, region string) (aws.Credentials, error) {
	f.mu.Lock()
	f.calls = append(f.calls, region)
	f.mu.Unlock()
	if f.err != nil {
		return aws.Credentials{}, f.err
	}
	return tenantCreds(r.AccountID), nil
}

func tenantCreds(account string) aws.Credentials {
	return aws.Credentials{
		AccessKeyID: "ASIA" + account, SecretAccessKey: "secret-" + account, SessionToken: "session-" + account,
		CanExpire: true, Expires: testNow.Add(time.Hour),
	}
}

var platformCreds = aws.Credentials{AccessKeyID: "AKIAPLATFORM", SecretAccessKey: "platform-secret", Source: "test"}

func secretFor(keyID string) (string, bool) {
	if keyID == platformCreds.AccessKeyID {
		return platformCreds.SecretAccessKey, true
	}
	if strings.HasPrefix(keyID, "ASIA") {
		return "secret-" + strings.TrimPrefix(keyID, "ASIA"), true
	}
	return "", false
}

func testExtProcConfig() config.ExtProc {
	return config.ExtProc{
		TenantSource:            config.TenantFromMetadata,
		DefaultRegion:           "us-east-1",
		EndpointTemplate:        "bedrock-runtime.{region}.amazonaws.com",
		ControlEndpointTemplate: "bedrock.{region}.amazonaws.com",
		SigningName:             "bedrock",
		EnterpriseWithoutRoute:  config.NoRoutePlatform,
		AsyncInvoke:             config.AsyncInvokeTenantOnly,
		MaxBodyBytes:            1 << 20,
	}
}

func newTestServer(t testing.TB, cfg config.ExtProc, routes *fakeRoutes, creds *fakeCreds) *Server {
	t.Helper()
	s, err := New(Options{
		Config:       cfg,
		StripHeaders: []string{"X-Internal-Key"},
		Platform:     aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil }),
		Now:          func() time.Time { return testNow },
		// The plans `serve` builds from a configuration with defaults.
		BedrockHeaders: defaultPlans(t),
	}, routes, creds)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// defaultPlans is the plan catalog of the default configuration.
func defaultPlans(t testing.TB) *plan.Catalog {
	t.Helper()
	c, err := config.Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := plan.New(c.Plans)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

type hdr struct{ k, v string }

func headersMsg(id *identity.Identity, eos bool, hs ...hdr) *extprocv3.ProcessingRequest {
	hm := &corev3.HeaderMap{}
	for _, h := range hs {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: h.k, RawValue: []byte(h.v)})
	}
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hm, EndOfStream: eos},
	}}
	if id != nil {
		req.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{identity.MetadataNamespace: id.Struct()}}
	}
	return req
}

func bodyMsg(b []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: b, EndOfStream: eos},
	}}
}

// applyMutation applies an ext_proc header mutation the way Envoy does:
// removals, then sets (raw_value only; value must be empty).
func applyMutation(t testing.TB, in map[string][]string, m *extprocv3.HeaderMutation) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for k, v := range in {
		out[k] = append([]string(nil), v...)
	}
	for _, r := range m.GetRemoveHeaders() {
		delete(out, r)
	}
	for _, o := range m.GetSetHeaders() {
		h := o.GetHeader()
		if h.GetValue() != "" {
			t.Fatalf("header %s set through value, not raw_value", h.GetKey())
		}
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Fatalf("header %s append action %v", h.GetKey(), o.GetAppendAction())
		}
		out[h.GetKey()] = []string{string(h.GetRawValue())}
	}
	return out
}

func toMap(hs []hdr) map[string][]string {
	m := map[string][]string{}
	for _, h := range hs {
		m[h.k] = append(m[h.k], h.v)
	}
	return m
}

// verifySigV4 checks a forwarded request the way AWS does for non-S3
// services and returns the access key id that signed it. It is written
// independently of the SDK signer.
func verifySigV4(headers map[string][]string, method, path string, body []byte, service string) (string, error) {
	get := func(k string) string {
		if v := headers[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	auth := get("authorization")
	const alg = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, alg) {
		return "", errors.New("not a SigV4 authorization")
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, alg), ", ") {
		k, v, _ := strings.Cut(part, "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[3] != service {
		return "", fmt.Errorf("bad credential scope %q", fields["Credential"])
	}
	keyID, date, region := scope[0], scope[1], scope[2]
	secret, ok := secretFor(keyID)
	if !ok {
		return "", fmt.Errorf("unknown access key %s", keyID)
	}
	amzDate := get("x-amz-date")
	if !strings.HasPrefix(amzDate, date) {
		return "", errors.New("x-amz-date does not match scope")
	}
	wantHost := "bedrock-runtime." + region + ".amazonaws.com"
	if a := get(":authority"); a != wantHost && a != "bedrock."+region+".amazonaws.com" {
		return "", fmt.Errorf("authority %q, want %q or the control-plane host", a, wantHost)
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	var ch strings.Builder
	for _, n := range signed {
		var v string
		if n == "host" {
			v = get(":authority")
		} else {
			vals, ok := headers[n]
			if !ok {
				return "", fmt.Errorf("signed header %s missing", n)
			}
			trimmed := make([]string, len(vals))
			for i := range vals {
				trimmed[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(trimmed, ",")
		}
		ch.WriteString(n + ":" + v + "\n")
	}
	rawPath, rawQuery, _ := strings.Cut(path, "?")
	var cu strings.Builder
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		if c == '/' || c == '-' || c == '_' || c == '.' || c == '~' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			cu.WriteByte(c)
		} else {
			fmt.Fprintf(&cu, "%%%02X", c)
		}
	}
	var qs []string
	if rawQuery != "" {
		for _, kv := range strings.Split(rawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			dk, err1 := url.QueryUnescape(k)
			dv, err2 := url.QueryUnescape(v)
			if err1 != nil || err2 != nil {
				return "", errors.New("bad query")
			}
			qs = append(qs, strings.ReplaceAll(url.QueryEscape(dk), "+", "%20")+"="+strings.ReplaceAll(url.QueryEscape(dv), "+", "%20"))
		}
		sort.Strings(qs)
	}
	sum := sha256.Sum256(body)
	creq := strings.Join([]string{method, cu.String(), strings.Join(qs, "&"), ch.String(), fields["SignedHeaders"], hex.EncodeToString(sum[:])}, "\n")
	csum := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(csum[:])
	mac := func(k []byte, s string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(s)); return h.Sum(nil) }
	k := mac([]byte("AWS4"+secret), date)
	k = mac(k, region)
	k = mac(k, service)
	k = mac(k, "aws4_request")
	if hex.EncodeToString(mac(k, sts)) != fields["Signature"] {
		return "", errors.New("signature mismatch")
	}
	if strings.HasPrefix(keyID, "ASIA") && get("x-amz-security-token") != "session-"+strings.TrimPrefix(keyID, "ASIA") {
		return "", errors.New("security token mismatch")
	}
	return keyID, nil
}
