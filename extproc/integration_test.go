package extproc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/stack"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// countingSTS issues credentials for the account named in the session tag
// and counts calls per account.
type countingSTS struct {
	mu    sync.Mutex
	calls map[string]int
}

func (f *countingSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	account := ""
	for _, tg := range in.Tags {
		if aws.ToString(tg.Key) == "account_id" {
			account = aws.ToString(tg.Value)
		}
	}
	time.Sleep(10 * time.Millisecond) // a slow STS makes concurrent first requests overlap
	f.mu.Lock()
	f.calls[account]++
	f.mu.Unlock()
	c := tenantCreds(account)
	exp := time.Now().Add(time.Hour)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String(c.AccessKeyID), SecretAccessKey: aws.String(c.SecretAccessKey),
		SessionToken: aws.String(c.SessionToken), Expiration: &exp,
	}}, nil
}

// fakeBedrock verifies SigV4 like AWS and records which key signed each
// request, by the x-test-id header the test adds.
type fakeBedrock struct {
	t       testing.TB
	mu      sync.Mutex
	signers map[string]string
	leaks   []string
}

func (f *fakeBedrock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	hs := map[string][]string{":authority": {r.Host}}
	for k, v := range r.Header {
		hs[strings.ToLower(k)] = v
	}
	for k, vs := range hs {
		for _, v := range vs {
			if strings.Contains(v, "user-jwt-token") || strings.Contains(v, "sk_") {
				f.mu.Lock()
				f.leaks = append(f.leaks, k)
				f.mu.Unlock()
			}
		}
	}
	key, err := verifySigV4(hs, r.Method, r.RequestURI, body, "bedrock")
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"message":%q}`, err.Error())
		return
	}
	f.mu.Lock()
	f.signers[r.Header.Get("X-Test-Id")] = key
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"output":{}}`)
}

type harness struct {
	client  extprocv3.ExternalProcessorClient
	bedrock *fakeBedrock
	upURL   *url.URL
	sts     *countingSTS
}

func newHarness(t *testing.T, cfg config.ExtProc, routes *fakeRoutes) *harness {
	t.Helper()
	fs := &countingSTS{calls: map[string]int{}}
	reg := prometheus.NewRegistry()
	cache := awscreds.New(awscreds.Options{
		Config: config.AssumeRole{Duration: config.Duration(time.Hour), RefreshBefore: config.Duration(5 * time.Minute),
			RefreshJitter: config.Duration(time.Minute), FailureTTL: config.Duration(5 * time.Second),
			Timeout: config.Duration(5 * time.Second), SessionNamePrefix: "tenantgate-"},
		STSForRegion: func(string) awscreds.STSAPI { return fs },
		Registerer:   reg,
	})
	srv, err := New(Options{
		Config:     cfg,
		Platform:   aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil }),
		Registerer: reg,
	}, routes, cache)
	if err != nil {
		t.Fatal(err)
	}
	conn := stack.InProcessGRPC(t, srv.Register)
	fb := &fakeBedrock{t: t, signers: map[string]string{}}
	up := httptest.NewServer(fb)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	return &harness{client: extprocv3.NewExternalProcessorClient(conn), bedrock: fb, upURL: u, sts: fs}
}

// do drives one request through ext_proc as Envoy does, applies the
// mutations and forwards the result to the fake Bedrock. It returns the
// upstream status, or the immediate response status if ext_proc answered.
func (h *harness) do(t testing.TB, id *identity.Identity, method, path string, body []byte, extra ...hdr) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := h.client.Process(ctx)
	if err != nil {
		return 0, err
	}
	defer stream.CloseSend()
	hs := clientHeaders(method, path, extra...)
	if body != nil {
		hs = append(hs, hdr{"content-length", fmt.Sprint(len(body))})
	}
	if err := stream.Send(headersMsg(id, body == nil, hs...)); err != nil {
		return 0, err
	}
	r1, err := stream.Recv()
	if err != nil {
		return 0, err
	}
	if ir := r1.GetImmediateResponse(); ir != nil {
		return int(ir.GetStatus().GetCode()), nil
	}
	out := applyMutation(t, toMap(hs), r1.GetRequestHeaders().GetResponse().GetHeaderMutation())
	if body != nil {
		if r1.GetModeOverride() == nil {
			return 0, fmt.Errorf("no mode override for a request with a body")
		}
		if err := stream.Send(bodyMsg(body, true)); err != nil {
			return 0, err
		}
		r2, err := stream.Recv()
		if err != nil {
			return 0, err
		}
		if ir := r2.GetImmediateResponse(); ir != nil {
			return int(ir.GetStatus().GetCode()), nil
		}
		out = applyMutation(t, out, r2.GetRequestBody().GetResponse().GetHeaderMutation())
	}
	// Forward the way Envoy would: raw path untouched, :authority as Host.
	req, err := http.NewRequestWithContext(ctx, method, h.upURL.String(), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	rawPath, rawQuery, _ := strings.Cut(path, "?")
	req.URL.Opaque, req.URL.RawQuery = rawPath, rawQuery
	req.Host = out[":authority"][0]
	for k, vs := range out {
		if strings.HasPrefix(k, ":") || k == "content-length" {
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, fmt.Errorf("upstream %d: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

func TestGRPCStreamAgainstVerifier(t *testing.T) {
	h := newHarness(t, testExtProcConfig(), defaultRoutes())
	body := []byte(`{"messages":[]}`)
	cases := []struct {
		name       string
		id         *identity.Identity
		method     string
		path       string
		body       []byte
		wantStatus int
		wantKey    string
	}{
		{"tenant model id with colon", entID, "POST", haikuPath, body, 200, "ASIAacct-ent"},
		{"tenant inference profile arn", entID, "POST", profilePath, body, 200, "ASIAacct-ent"},
		{"platform invoke", proID, "POST", "/model/amazon.titan-text-express-v1/invoke", body, 200, "AKIAPLATFORM"},
		{"tenant list with query", entID, "GET", "/async-invoke?maxResults=3&sortOrder=Descending", nil, 200, "ASIAacct-ent"},
		{"platform list refused", proID, "GET", "/async-invoke?maxResults=3", nil, 403, ""},
		{"tenant get async invoke arn", entID, "GET", "/async-invoke/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Aasync-invoke%2Fabc", nil, 200, "ASIAacct-ent"},
		{"no tenant", nil, "POST", haikuPath, body, 403, ""},
		{"bidi", entID, "POST", "/model/x/invoke-with-bidirectional-stream", body, 400, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tid := fmt.Sprintf("case-%d", i)
			status, err := h.do(t, tc.id, tc.method, tc.path, tc.body, hdr{"x-test-id", tid})
			if status != tc.wantStatus {
				t.Fatalf("status %d (err %v), want %d", status, err, tc.wantStatus)
			}
			h.bedrock.mu.Lock()
			got := h.bedrock.signers[tid]
			h.bedrock.mu.Unlock()
			if got != tc.wantKey {
				t.Fatalf("signed by %q, want %q", got, tc.wantKey)
			}
		})
	}
	if len(h.bedrock.leaks) != 0 {
		t.Fatalf("caller credentials reached upstream in headers %v", h.bedrock.leaks)
	}
}

// TestManyTenantsConcurrently: every request is signed by its own tenant's
// credentials, each tenant costs one STS call, and no caller token reaches
// the upstream.
func TestManyTenantsConcurrently(t *testing.T) {
	const tenants, perTenant = 50, 6
	routes := &fakeRoutes{routes: map[string]tenant.Route{}}
	ids := make([]*identity.Identity, tenants)
	for i := range tenants {
		acct := fmt.Sprintf("acct-%02d", i)
		region := []string{"us-east-1", "eu-west-1", "ap-northeast-1"}[i%3]
		routes.routes[acct] = tenant.Route{AccountID: acct, RoleARN: fmt.Sprintf("arn:aws:iam::%012d:role/bedrock", i), ExternalID: "ext-" + acct, Region: region, Enabled: true}
		ids[i] = &identity.Identity{AccountID: acct, UserID: "u", Tier: "enterprise", Enterprise: true}
	}
	h := newHarness(t, testExtProcConfig(), routes)
	body := []byte(`{"inputText":"hello"}`)
	var wg sync.WaitGroup
	errs := make(chan error, tenants*perTenant)
	for i := range tenants {
		for j := range perTenant {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tid := fmt.Sprintf("%d-%d", i, j)
				path := haikuPath
				if j%2 == 1 {
					// A profile ARN in the tenant's own region and account.
					path = fmt.Sprintf("/model/arn%%3Aaws%%3Abedrock%%3A%s%%3A%012d%%3Aapplication-inference-profile%%2Fp/converse-stream",
						routes.routes[ids[i].AccountID].Region, i)
				}
				if status, err := h.do(t, ids[i], "POST", path, body, hdr{"x-test-id", tid}); status != 200 {
					errs <- fmt.Errorf("tenant %d req %d: status %d: %v", i, j, status, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.bedrock.mu.Lock()
	defer h.bedrock.mu.Unlock()
	for i := range tenants {
		for j := range perTenant {
			want := "ASIA" + ids[i].AccountID
			if got := h.bedrock.signers[fmt.Sprintf("%d-%d", i, j)]; got != want {
				t.Errorf("request %d-%d signed by %q, want %q", i, j, got, want)
			}
		}
	}
	h.sts.mu.Lock()
	defer h.sts.mu.Unlock()
	for i := range tenants {
		if n := h.sts.calls[ids[i].AccountID]; n != 1 {
			t.Errorf("tenant %d: %d STS calls, want 1", i, n)
		}
	}
	if len(h.bedrock.leaks) != 0 {
		t.Fatalf("caller credentials reached upstream in headers %v", h.bedrock.leaks)
	}
}
