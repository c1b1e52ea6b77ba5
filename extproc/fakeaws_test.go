package extproc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	fakests "github.com/tenantgate/tenantgate/internal/fakeaws/sts"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/stack"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

const (
	fakePlatformKey    = "AKIAFAKEPLATFORM0001"
	fakePlatformSecret = "fake-platform-secret-0001"
	fakePlatformARN    = "arn:aws:iam::000000000000:user/tenantgate-platform"
	fakeInvokerRoleARN = "arn:aws:iam::000000000000:role/tenantgate-invoker"
)

var fakeRegions = []string{"us-east-1", "eu-west-1", "ap-northeast-1"}

// awsWorld is tenantgate's ext_proc wired to the fake STS (through the SDK
// STS client over HTTP) and replaying to the fake Bedrock runtime, both of
// which verify SigV4 like AWS.
type awsWorld struct {
	client  extprocv3.ExternalProcessorClient
	sts     *fakests.Server
	bedrock *bedrock.Server
	brURL   string
	routes  *fakeRoutes
	srv     *Server
}

func tenantRoleARN(i int) string {
	return fmt.Sprintf("arn:aws:iam::%012d:role/tenant-bedrock", 100000+i)
}

// worldClock is the one clock of the fake AWS and tenantgate in a test.
type worldClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *worldClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *worldClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// worldOption adjusts the fake Bedrock's or tenantgate's options of a world.
type worldOption func(*bedrock.Config, *Options)

func newAWSWorld(t *testing.T, tenants int, opts ...worldOption) *awsWorld {
	return newAWSWorldAt(t, tenants, &worldClock{t: time.Now()}, opts...)
}

func newAWSWorldAt(t *testing.T, tenants int, clock *worldClock, opts ...worldOption) *awsWorld {
	t.Helper()
	store := credstore.New(clock.Now)
	store.AddStatic(fakePlatformKey, fakePlatformSecret, fakePlatformARN)
	routes := &fakeRoutes{routes: map[string]tenant.Route{}}
	var roles []fakests.Role
	for i := range tenants {
		acct := fmt.Sprintf("acct-%02d", i)
		r := tenant.Route{AccountID: acct, RoleARN: tenantRoleARN(i), ExternalID: "ext-" + acct, Region: fakeRegions[i%len(fakeRegions)], Enabled: true}
		routes.routes[acct] = r
		roles = append(roles, fakests.Role{ARN: r.RoleARN, ExternalID: r.ExternalID, TagSession: true, SetSourceIdentity: true})
	}
	// The platform's own invoker role (extproc.platform_role_arn), trusted
	// by the platform principal with tags and SourceIdentity.
	roles = append(roles, fakests.Role{ARN: fakeInvokerRoleARN, Principals: []string{fakePlatformARN}, TagSession: true, SetSourceIdentity: true})
	stsSrv, err := fakests.New(fakests.Config{
		Credentials: store, Roles: roles, Now: clock.Now,
		// The SDK's STS client signs with the real clock; the test clock
		// may be ahead of it.
		MaxSkew: 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	stsHTTP := httptest.NewServer(stsSrv)
	t.Cleanup(stsHTTP.Close)
	brCfg := bedrock.Config{Credentials: store, Regions: fakeRegions, StreamDelay: time.Millisecond, Now: clock.Now}
	platform := credentials.NewStaticCredentialsProvider(fakePlatformKey, fakePlatformSecret, "")
	cfg := testExtProcConfig()
	cfg.AssumeRole = config.AssumeRole{Duration: config.Duration(time.Hour), RefreshBefore: config.Duration(5 * time.Minute),
		RefreshJitter: config.Duration(time.Minute), FailureTTL: config.Duration(5 * time.Second),
		Timeout: config.Duration(5 * time.Second), SessionNamePrefix: "tenantgate-"}
	srvOpts := Options{Config: cfg, Models: worldPlans(t), Platform: platform, Now: clock.Now}
	for _, o := range opts {
		o(&brCfg, &srvOpts)
	}
	br, err := bedrock.New(brCfg)
	if err != nil {
		t.Fatal(err)
	}
	brHTTP := httptest.NewServer(br)
	t.Cleanup(brHTTP.Close)

	cache := awscreds.New(awscreds.Options{
		Config: cfg.AssumeRole,
		Now:    clock.Now,
		Rand:   func() float64 { return 0.5 },
		STSForRegion: awscreds.STSClients(aws.Config{
			Region: cfg.DefaultRegion, Credentials: platform, BaseEndpoint: aws.String(stsHTTP.URL), HTTPClient: stsHTTP.Client(),
		}),
	})
	if srvOpts.Config.PlatformRoleARN != "" && srvOpts.PlatformSessions == nil {
		srvOpts.PlatformSessions = cache
	}
	srv, err := New(srvOpts, routes, cache)
	if err != nil {
		t.Fatal(err)
	}
	conn := stack.InProcessGRPC(t, srv.Register)
	return &awsWorld{client: extprocv3.NewExternalProcessorClient(conn), sts: stsSrv, bedrock: br, brURL: brHTTP.URL, routes: routes, srv: srv}
}

// send drives one request through ext_proc as Envoy does and replays the
// mutated request to the fake Bedrock. It returns the final status.
func (w *awsWorld) send(t testing.TB, id *identity.Identity, method, path string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := w.client.Process(ctx)
	if err != nil {
		return 0, "", err
	}
	defer stream.CloseSend()
	hs := clientHeaders(method, path)
	if body != nil {
		hs = append(hs, hdr{"content-length", fmt.Sprint(len(body))})
	}
	if err := stream.Send(headersMsg(id, body == nil, hs...)); err != nil {
		return 0, "", err
	}
	r1, err := stream.Recv()
	if err != nil {
		return 0, "", err
	}
	if ir := r1.GetImmediateResponse(); ir != nil {
		return int(ir.GetStatus().GetCode()), string(ir.GetBody()), nil
	}
	out := applyMutation(t, toMap(hs), r1.GetRequestHeaders().GetResponse().GetHeaderMutation())
	if body != nil {
		if err := stream.Send(bodyMsg(body, true)); err != nil {
			return 0, "", err
		}
		r2, err := stream.Recv()
		if err != nil {
			return 0, "", err
		}
		if ir := r2.GetImmediateResponse(); ir != nil {
			return int(ir.GetStatus().GetCode()), string(ir.GetBody()), nil
		}
		out = applyMutation(t, out, r2.GetRequestBody().GetResponse().GetHeaderMutation())
	}
	req, err := http.NewRequestWithContext(ctx, method, w.brURL, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
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
		return 0, "", err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(rb), nil
}

func checkRecord(t *testing.T, rec bedrock.Record) {
	t.Helper()
	if rec.BearerAuthorization || rec.APIKeyHeader || rec.AccountIDHeader {
		t.Errorf("caller credentials or identity reached Bedrock: %+v", rec)
	}
	if slices.Contains(rec.SignedHeaders, "content-length") {
		t.Errorf("content-length signed: %v", rec.SignedHeaders)
	}
	for _, h := range rec.NonAWSHeaders {
		if h == "cookie" || h == "x-service-key" || strings.HasPrefix(h, "x-tenantgate-") {
			t.Errorf("header %s reached Bedrock", h)
		}
	}
}

func TestAgainstFakeAWS(t *testing.T) {
	w := newAWSWorld(t, 3)
	ent := &identity.Identity{AccountID: "acct-01", Enterprise: true, Tier: "enterprise"} // eu-west-1
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	cases := []struct {
		name, method, path string
		id                 *identity.Identity
		body               []byte
		wantPrincipal      string
		wantRegion         string
	}{
		{"tenant converse model id with colon", "POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", ent, body, "assumed-role/tenant-bedrock/tenantgate-acct-01", "eu-west-1"},
		{"tenant inference profile arn", "POST", "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A000000100001%3Ainference-profile%2Feu.anthropic.claude-3-haiku-20240307-v1%3A0/converse", ent, body, "assumed-role/tenant-bedrock/tenantgate-acct-01", "eu-west-1"},
		{"tenant invoke", "POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke", ent, []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`), "assumed-role/tenant-bedrock/tenantgate-acct-01", "eu-west-1"},
		{"platform converse", "POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", proID, body, fakePlatformARN, "us-east-1"},
		{"tenant list async invokes", "GET", "/async-invoke?maxResults=2", ent, nil, "assumed-role/tenant-bedrock/tenantgate-acct-01", "eu-west-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.bedrock.ResetRecords()
			status, rb, err := w.send(t, tc.id, tc.method, tc.path, tc.body)
			if err != nil || status != 200 {
				t.Fatalf("status %d body %s err %v", status, rb, err)
			}
			recs := w.bedrock.Records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			rec := recs[0]
			checkRecord(t, rec)
			if !strings.Contains(rec.PrincipalARN, tc.wantPrincipal) || rec.Region != tc.wantRegion {
				t.Fatalf("signed by %s in %s, want %s in %s", rec.PrincipalARN, rec.Region, tc.wantPrincipal, tc.wantRegion)
			}
			if rec.RawPath != strings.SplitN(tc.path, "?", 2)[0] {
				t.Fatalf("raw path %q", rec.RawPath)
			}
		})
	}
	if n := w.sts.CallCount(tenantRoleARN(1)); n != 1 {
		t.Fatalf("%d STS calls for the tenant, want 1", n)
	}
	calls := w.sts.Calls()
	if c := calls[0]; c.ExternalID != "ext-acct-01" || c.RoleSessionName != "tenantgate-acct-01" || c.Principal != fakePlatformARN ||
		!slices.Equal(c.Tags, []fakests.Tag{{Key: "account_id", Value: "acct-01"}, {Key: "tier", Value: "enterprise"}}) ||
		c.SourceIdentity != "acct-01" || c.DurationSeconds != 3600 {
		t.Fatalf("AssumeRole call %+v", c)
	}
}

func TestFakeAWSRoleDenied(t *testing.T) {
	w := newAWSWorld(t, 1)
	w.routes.mu.Lock()
	r := w.routes.routes["acct-00"]
	r.ExternalID = "not-the-right-one"
	w.routes.routes["acct-00"] = r
	w.routes.mu.Unlock()
	id := &identity.Identity{AccountID: "acct-00", Enterprise: true}
	status, rb, err := w.send(t, id, "POST", haikuPath, []byte(`{}`))
	if err != nil || status != 403 || !strings.Contains(rb, "tenant_role_denied") {
		t.Fatalf("status %d body %s err %v", status, rb, err)
	}
	if len(w.bedrock.Records()) != 0 {
		t.Fatal("request reached Bedrock")
	}
}

// TestFakeAWSManyTenants: 50 tenants × concurrent requests; every request is
// signed by its own tenant's assumed role, each tenant costs one STS call
// (counted at the fake STS), and no caller credential reaches Bedrock.
func TestFakeAWSManyTenants(t *testing.T) {
	const tenants, perTenant = 50, 4
	w := newAWSWorld(t, tenants)
	w.sts.Faults().SetLatency(20 * time.Millisecond)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	var wg sync.WaitGroup
	errs := make(chan error, tenants*perTenant)
	for i := range tenants {
		for j := range perTenant {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := &identity.Identity{AccountID: fmt.Sprintf("acct-%02d", i), Enterprise: true}
				path := haikuPath
				if j%2 == 1 {
					// A profile ARN in the tenant's own region and account.
					path = fmt.Sprintf("/model/arn%%3Aaws%%3Abedrock%%3A%s%%3A%012d%%3Aapplication-inference-profile%%2Fprof%d/converse",
						fakeRegions[i%len(fakeRegions)], 100000+i, i)
				}
				if status, rb, err := w.send(t, id, "POST", path, body); status != 200 {
					errs <- fmt.Errorf("tenant %d request %d: %d %s %v", i, j, status, rb, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs := w.bedrock.Records()
	if len(recs) != tenants*perTenant {
		t.Fatalf("%d records, want %d", len(recs), tenants*perTenant)
	}
	perPrincipal := map[string]int{}
	for _, rec := range recs {
		checkRecord(t, rec)
		if rec.Status != 200 {
			t.Errorf("bedrock answered %d (%s)", rec.Status, rec.ErrorType)
		}
		perPrincipal[rec.PrincipalARN]++
	}
	for i := range tenants {
		want := fmt.Sprintf("arn:aws:sts::%012d:assumed-role/tenant-bedrock/tenantgate-acct-%02d", 100000+i, i)
		if perPrincipal[want] != perTenant {
			t.Errorf("tenant %d: %d requests signed by its role (principals %d distinct)", i, perPrincipal[want], len(perPrincipal))
		}
		if n := w.sts.CallCount(tenantRoleARN(i)); n != 1 {
			t.Errorf("tenant %d: %d STS calls, want 1", i, n)
		}
	}
}

// TestFakeAWSCredentialLifetime: within one credential lifetime a tenant
// costs one STS call; inside the refresh window the old credentials keep
// signing while exactly one refresh runs; after it every request is signed
// with the new credentials.
func TestFakeAWSCredentialLifetime(t *testing.T) {
	clock := &worldClock{t: time.Now()}
	const tenants = 10
	w := newAWSWorldAt(t, tenants, clock)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	round := func() map[string]bool {
		keys := map[string]bool{}
		w.bedrock.ResetRecords()
		var wg sync.WaitGroup
		for i := range tenants {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := &identity.Identity{AccountID: fmt.Sprintf("acct-%02d", i), Enterprise: true}
					if status, rb, err := w.send(t, id, "POST", haikuPath, body); status != 200 {
						t.Errorf("tenant %d: %d %s %v", i, status, rb, err)
					}
				}()
			}
		}
		wg.Wait()
		for _, r := range w.bedrock.Records() {
			keys[r.AccessKeyID] = true
		}
		return keys
	}
	calls := func() int {
		n := 0
		for i := range tenants {
			n += w.sts.CallCount(tenantRoleARN(i))
		}
		return n
	}
	first := round()
	if calls() != tenants || len(first) != tenants {
		t.Fatalf("first round: %d STS calls, %d keys; want %d each", calls(), len(first), tenants)
	}
	clock.Add(30 * time.Minute)
	if again := round(); calls() != tenants || len(again) != tenants {
		t.Fatalf("mid-lifetime: %d STS calls, %d keys", calls(), len(again))
	}
	// Inside the refresh window (expiry - 5m - jitter): old credentials
	// still sign while one background refresh per tenant runs.
	clock.Add(25 * time.Minute)
	round()
	deadline := time.Now().Add(10 * time.Second)
	for calls() < 2*tenants && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if calls() != 2*tenants {
		t.Fatalf("%d STS calls after the refresh window, want %d", calls(), 2*tenants)
	}
	// The fake STS counts a call when it arrives; the cache stores the new
	// credentials once the response is parsed, so allow a moment.
	for attempt := 0; ; attempt++ {
		stale := 0
		for k := range round() {
			if first[k] {
				stale++
			}
		}
		if stale == 0 {
			break
		}
		if attempt == 50 {
			t.Fatalf("old credentials still used after refresh by %d tenants", stale)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if calls() != 2*tenants {
		t.Fatalf("%d STS calls, want %d", calls(), 2*tenants)
	}
}

// TestEnvoyWithFakeAWS runs the whole chain: a real Envoy with ext_authz and
// this ext_proc, the SDK STS client against the fake STS, and Envoy
// forwarding to the fake Bedrock runtime, including a streamed response.
func TestEnvoyWithFakeAWS(t *testing.T) {
	w := newAWSWorld(t, 3)
	listen := startEnvoyWith(t, w.srv, w.bedrock, true, false)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	cases := []struct {
		name, tenant, method, path string
		body                       []byte
		wantPrincipal, wantRegion  string
		wantStream                 bool
	}{
		{"tenant converse", "enterprise:acct-01", "POST", haikuPath, body, "assumed-role/tenant-bedrock/tenantgate-acct-01", "eu-west-1", false},
		{"tenant converse-stream arn", "enterprise:acct-01", "POST", "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A000000100001%3Ainference-profile%2Feu.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", body, "assumed-role/tenant-bedrock/tenantgate-acct-01", "eu-west-1", true},
		{"platform converse-stream", "pro", "POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", body, fakePlatformARN, "us-east-1", true},
		{"tenant list async", "enterprise:acct-01", "GET", "/async-invoke?maxResults=2", nil, "assumed-role/tenant-bedrock/tenantgate-acct-01", "eu-west-1", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.bedrock.ResetRecords()
			status, rb, hdr := sendThroughEnvoy(t, listen, tc.tenant, fmt.Sprintf("fake-%d", i), tc.method, tc.path, tc.body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, rb)
			}
			if tc.wantStream != strings.Contains(hdr.Get("Content-Type"), "eventstream") {
				t.Fatalf("content-type %q", hdr.Get("Content-Type"))
			}
			if tc.wantStream && !bytes.Contains(rb, []byte("messageStop")) {
				t.Fatalf("stream truncated: %d bytes", len(rb))
			}
			recs := w.bedrock.Records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			checkRecord(t, recs[0])
			if !strings.Contains(recs[0].PrincipalARN, tc.wantPrincipal) || recs[0].Region != tc.wantRegion {
				t.Fatalf("signed by %s in %s", recs[0].PrincipalARN, recs[0].Region)
			}
		})
	}
}
