package awscreds

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeSTS issues credentials named after the role session and counts calls
// per (role, external id).
type fakeSTS struct {
	clock *clock
	delay time.Duration
	mu    sync.Mutex
	calls map[string]int
	last  *sts.AssumeRoleInput
	fail  func(in *sts.AssumeRoleInput) error
	ttl   time.Duration
}

func newFakeSTS(c *clock) *fakeSTS {
	return &fakeSTS{clock: c, calls: map[string]int{}, ttl: time.Hour}
}

func (f *fakeSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.mu.Lock()
	k := aws.ToString(in.RoleArn) + "|" + aws.ToString(in.ExternalId)
	f.calls[k]++
	n := f.calls[k]
	f.last = in
	fail := f.fail
	f.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(in); err != nil {
			return nil, err
		}
	}
	exp := f.clock.Now().Add(f.ttl)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId:     aws.String(fmt.Sprintf("ASIA-%s-%s-%d", k, aws.ToString(in.RoleSessionName), n)),
		SecretAccessKey: aws.String("secret-" + k),
		SessionToken:    aws.String("token-" + k),
		Expiration:      &exp,
	}}, nil
}

func (f *fakeSTS) count(role, ext string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[role+"|"+ext]
}

func testConfig() config.AssumeRole {
	return config.AssumeRole{
		Duration:          config.Duration(time.Hour),
		RefreshBefore:     config.Duration(5 * time.Minute),
		RefreshJitter:     config.Duration(time.Minute),
		FailureTTL:        config.Duration(5 * time.Second),
		Timeout:           config.Duration(2 * time.Second),
		SessionNamePrefix: "tenantgate-",
	}
}

func newCache(t *testing.T, f *fakeSTS, c *clock) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(Options{
		Config:       testConfig(),
		STSForRegion: func(string) STSAPI { return f },
		Registerer:   reg,
		Now:          c.Now,
		Rand:         func() float64 { return 0.5 },
	}), reg
}

func route(i int) tenant.Route {
	return tenant.Route{
		AccountID:  fmt.Sprintf("00000000-0000-0000-0000-%012d", i),
		RoleARN:    fmt.Sprintf("arn:aws:iam::%012d:role/bedrock", i),
		ExternalID: fmt.Sprintf("ext-%d", i),
		Enabled:    true,
	}
}

func TestSingleFlightPerTenant(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	f.delay = 20 * time.Millisecond
	cache, reg := newCache(t, f, c)
	const tenants, workers = 8, 50
	var wg sync.WaitGroup
	var bad atomic.Int32
	for w := 0; w < workers; w++ {
		for i := 0; i < tenants; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := route(i)
				cr, err := cache.Credentials(context.Background(), r, "us-east-1")
				if err != nil || !strings.Contains(cr.AccessKeyID, r.RoleARN) {
					bad.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d requests got wrong credentials or errors", bad.Load())
	}
	for i := 0; i < tenants; i++ {
		r := route(i)
		if n := f.count(r.RoleARN, r.ExternalID); n != 1 {
			t.Errorf("tenant %d: %d STS calls, want 1", i, n)
		}
	}
	if got := counterValue(t, reg, "tenantgate_sts_assume_role_calls_total", "ok"); got != tenants {
		t.Errorf("sts ok metric = %v, want %d", got, tenants)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestAssumeRoleInput(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	cache, _ := newCache(t, f, c)
	r := route(7)
	r.Tier = "tier_200_1000"
	cr, err := cache.Credentials(context.Background(), r, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if !cr.CanExpire || !cr.Expires.Equal(c.Now().Add(time.Hour)) || cr.SessionToken == "" {
		t.Fatalf("credentials %+v", cr)
	}
	in := f.last
	if aws.ToString(in.RoleArn) != r.RoleARN || aws.ToString(in.ExternalId) != r.ExternalID {
		t.Fatalf("role/external id: %v %v", aws.ToString(in.RoleArn), aws.ToString(in.ExternalId))
	}
	if aws.ToInt32(in.DurationSeconds) != 3600 {
		t.Fatalf("duration %d", aws.ToInt32(in.DurationSeconds))
	}
	if got := tagMap(in.Tags); len(in.Tags) != 2 || got["account_id"] != r.AccountID || got["tier"] != "tier_200_1000" {
		t.Fatalf("tags %v", got)
	}
	if aws.ToString(in.SourceIdentity) != r.AccountID {
		t.Fatalf("source identity %q, want %q", aws.ToString(in.SourceIdentity), r.AccountID)
	}
	name := aws.ToString(in.RoleSessionName)
	if !regexp.MustCompile(`^[\w+=,.@-]{2,64}$`).MatchString(name) || !strings.HasPrefix(name, "tenantgate-00000000") {
		t.Fatalf("session name %q", name)
	}
}

func TestSessionName(t *testing.T) {
	valid := regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	for _, tc := range []struct{ prefix, id, want string }{
		{"tenantgate-", "abc", "tenantgate-abc"},
		{"tg-", "a b/c:d", "tg-a-b-c-d"},
		{"", "x", "x-"},
		{"tenantgate-", strings.Repeat("a", 80), "tenantgate-" + strings.Repeat("a", 53)},
	} {
		got := SessionName(tc.prefix, tc.id)
		if got != tc.want || !valid.MatchString(got) {
			t.Errorf("SessionName(%q,%q) = %q, want %q", tc.prefix, tc.id, got, tc.want)
		}
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	cache, _ := newCache(t, f, c)
	r := route(1)
	ctx := context.Background()
	first, err := cache.Credentials(ctx, r, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	// Before refresh time (expiry - 5m - 30s jitter): served from cache.
	c.Add(50 * time.Minute)
	got, _ := cache.Credentials(ctx, r, "us-east-1")
	if got.AccessKeyID != first.AccessKeyID || f.count(r.RoleARN, r.ExternalID) != 1 {
		t.Fatalf("refreshed too early: %d calls", f.count(r.RoleARN, r.ExternalID))
	}
	// Inside the refresh window: the old credentials are served while one
	// background refresh runs.
	c.Add(5 * time.Minute)
	got, err = cache.Credentials(ctx, r, "us-east-1")
	if err != nil || got.AccessKeyID != first.AccessKeyID {
		t.Fatalf("stale-while-refresh: %v %v", got.AccessKeyID, err)
	}
	waitFor(t, func() bool { return f.count(r.RoleARN, r.ExternalID) == 2 })
	waitFor(t, func() bool {
		cr, _ := cache.Credentials(ctx, r, "us-east-1")
		return cr.AccessKeyID != first.AccessKeyID
	})
	if n := f.count(r.RoleARN, r.ExternalID); n != 2 {
		t.Fatalf("%d STS calls, want 2", n)
	}
}

func TestExpiredBlocksOnRefresh(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	cache, _ := newCache(t, f, c)
	r := route(2)
	ctx := context.Background()
	first, _ := cache.Credentials(ctx, r, "us-east-1")
	c.Add(2 * time.Hour)
	got, err := cache.Credentials(ctx, r, "us-east-1")
	if err != nil || got.AccessKeyID == first.AccessKeyID || !got.Expires.After(c.Now()) {
		t.Fatalf("expired creds not replaced synchronously: %v %v", got.AccessKeyID, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type apiErr struct{ code string }

func (e apiErr) Error() string                 { return "api error " + e.code }
func (e apiErr) ErrorCode() string             { return e.code }
func (e apiErr) ErrorMessage() string          { return "msg" }
func (e apiErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

func TestFailures(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		wantErr error
	}{
		{"access denied", &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized"}, ErrRoleDenied},
		{"throttled", apiErr{"Throttling"}, ErrUnavailable},
		{"network", errors.New("dial tcp: connection refused"), ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			f := newFakeSTS(c)
			f.fail = func(*sts.AssumeRoleInput) error { return tc.err }
			cache, _ := newCache(t, f, c)
			r := route(3)
			_, err := cache.Credentials(context.Background(), r, "us-east-1")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), r.ExternalID) {
				t.Fatalf("error leaks external id: %v", err)
			}
			// Failure cached: no second STS call within FailureTTL.
			_, err = cache.Credentials(context.Background(), r, "us-east-1")
			if !errors.Is(err, tc.wantErr) || f.count(r.RoleARN, r.ExternalID) != 1 {
				t.Fatalf("failure not cached: err=%v calls=%d", err, f.count(r.RoleARN, r.ExternalID))
			}
			// After FailureTTL a new call is made and may succeed.
			c.Add(6 * time.Second)
			f.mu.Lock()
			f.fail = nil
			f.mu.Unlock()
			if _, err := cache.Credentials(context.Background(), r, "us-east-1"); err != nil {
				t.Fatalf("after failure ttl: %v", err)
			}
			if n := f.count(r.RoleARN, r.ExternalID); n != 2 {
				t.Fatalf("%d calls, want 2", n)
			}
		})
	}
}

func TestRefreshFailureServesValidCreds(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	cache, _ := newCache(t, f, c)
	r := route(4)
	ctx := context.Background()
	first, _ := cache.Credentials(ctx, r, "us-east-1")
	f.mu.Lock()
	f.fail = func(*sts.AssumeRoleInput) error { return errors.New("sts down") }
	f.mu.Unlock()
	c.Add(57 * time.Minute)
	for i := 0; i < 20; i++ {
		got, err := cache.Credentials(ctx, r, "us-east-1")
		if err != nil || got.AccessKeyID != first.AccessKeyID {
			t.Fatalf("valid cached creds not served during STS failure: %v", err)
		}
	}
	waitFor(t, func() bool { return f.count(r.RoleARN, r.ExternalID) == 2 })
	// Failure is cached: further requests within FailureTTL make no call.
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < 20; i++ {
		if _, err := cache.Credentials(ctx, r, "us-east-1"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if n := f.count(r.RoleARN, r.ExternalID); n != 2 {
		t.Fatalf("%d STS calls during failure TTL, want 2", n)
	}
	// Once expired and STS still down: unavailable.
	c.Add(time.Hour)
	if _, err := cache.Credentials(ctx, r, "us-east-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestChangedRowGetsNewCredentials(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	cache, _ := newCache(t, f, c)
	r := route(5)
	ctx := context.Background()
	a, _ := cache.Credentials(ctx, r, "us-east-1")
	r2 := r
	r2.ExternalID = "rotated"
	b, err := cache.Credentials(ctx, r2, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKeyID == b.AccessKeyID || f.count(r.RoleARN, "rotated") != 1 {
		t.Fatalf("changed external id reused credentials")
	}
	cache.mu.Lock()
	n := len(cache.entries)
	cache.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d cache entries after rotation, want 1", n)
	}
	r3 := r
	r3.RoleARN = "arn:aws:iam::999999999999:role/other"
	if _, err := cache.Credentials(ctx, r3, "us-east-1"); err != nil || f.count(r3.RoleARN, r.ExternalID) != 1 {
		t.Fatalf("changed role arn: err=%v", err)
	}
}

func TestTimeoutAndCallerCancel(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	f.delay = time.Hour
	cfg := testConfig()
	cfg.Timeout = config.Duration(50 * time.Millisecond)
	cache := New(Options{Config: cfg, STSForRegion: func(string) STSAPI { return f }, Now: c.Now})
	start := time.Now()
	_, err := cache.Credentials(context.Background(), route(6), "us-east-1")
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Fatalf("err=%v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cache.Credentials(ctx, route(8), "us-east-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled caller: %v", err)
	}
}

func TestWarm(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	regions := map[string]int{}
	var mu sync.Mutex
	cache := New(Options{Config: testConfig(), Now: c.Now, STSForRegion: func(region string) STSAPI {
		mu.Lock()
		regions[region]++
		mu.Unlock()
		return f
	}})
	r1, r2, r3 := route(10), route(11), route(12)
	r2.Region = "eu-central-1"
	r3.Enabled = false
	cache.Warm(context.Background(), []tenant.Route{r1, r2, r3}, "us-west-2")
	if f.count(r1.RoleARN, r1.ExternalID) != 1 || f.count(r2.RoleARN, r2.ExternalID) != 1 || f.count(r3.RoleARN, r3.ExternalID) != 0 {
		t.Fatal("warm did not assume exactly the enabled routes")
	}
	if regions["us-west-2"] != 1 || regions["eu-central-1"] != 1 {
		t.Fatalf("regions %v", regions)
	}
	if _, err := cache.Credentials(context.Background(), r1, "us-west-2"); err != nil || f.count(r1.RoleARN, r1.ExternalID) != 1 {
		t.Fatal("warmed credentials not cached")
	}
}

// TestNoSTSCallWithoutUsableRoute: a routing row without an ExternalId (or
// otherwise malformed) never reaches STS, for a lookup or a warm-up.
func TestNoSTSCallWithoutUsableRoute(t *testing.T) {
	tests := []struct {
		name string
		edit func(*tenant.Route)
	}{
		{"no external id", func(r *tenant.Route) { r.ExternalID = "" }},
		{"one-character external id", func(r *tenant.Route) { r.ExternalID = "x" }},
		{"not a role arn", func(r *tenant.Route) { r.RoleARN = "arn:aws:iam::111122223333:user/alice" }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			f := newFakeSTS(c)
			cache, _ := newCache(t, f, c)
			r := route(20 + i)
			tt.edit(&r)
			_, err := cache.Credentials(context.Background(), r, "eu-west-1")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			cache.Warm(context.Background(), []tenant.Route{r}, "eu-west-1")
			f.mu.Lock()
			calls := len(f.calls)
			f.mu.Unlock()
			if calls != 0 {
				t.Fatalf("STS called %d times for %+v", calls, r)
			}
		})
	}
}

func tagMap(tags []ststypes.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		out[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

// TestSessionTags checks that what is sent as tags and SourceIdentity is
// always within STS's rules: the tier is made valid, an account id that
// would be refused is never sent.
func TestSessionTags(t *testing.T) {
	tagValue := regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$`)
	for _, tc := range []struct {
		name, account, tier, wantTier string
		wantErr                       bool
	}{
		{"uuid and plain tier", "a0000000-0000-4000-8000-000000000001", "tier_200_1000", "tier_200_1000", false},
		{"empty tier", "a0000000-0000-4000-8000-000000000001", "", tenant.NoTier, false},
		{"tier with refused characters", "acct-1", "Pro (2024)!*", "Pro _2024___", false},
		{"unicode tier kept", "acct-1", "Unternehmen ü", "Unternehmen ü", false},
		{"long tier cut", "acct-1", strings.Repeat("é", 300), strings.Repeat("é", 256), false},
		{"account too short", "a", "t", "", true},
		{"account too long", strings.Repeat("a", 65), "t", "", true},
		{"account with space", "acct 1", "t", "", true},
		{"account with colon", "aws:acct", "t", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tags, si, err := SessionTags(tc.account, tc.tier)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("SessionTags(%q) = %v %q, want error", tc.account, tags, si)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := tagMap(tags)
			if si != tc.account || got["account_id"] != tc.account || got["tier"] != tc.wantTier || !tagValue.MatchString(got["tier"]) {
				t.Fatalf("tags %v source identity %q, want tier %q", got, si, tc.wantTier)
			}
		})
	}
}

// TestNoSTSCallWithUnusableSourceIdentity: an account id STS would refuse
// as SourceIdentity fails without a call.
func TestNoSTSCallWithUnusableSourceIdentity(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	cache, _ := newCache(t, f, c)
	r := route(3)
	r.AccountID = "not a valid id"
	if _, err := cache.Credentials(context.Background(), r, "us-east-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if _, err := cache.PlatformCredentials(context.Background(), "arn:aws:iam::999988887777:role/Invoker", r.AccountID, "t", "us-east-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("platform: err = %v, want ErrUnavailable", err)
	}
	if n := f.count(r.RoleARN, r.ExternalID) + f.count("arn:aws:iam::999988887777:role/Invoker", ""); n != 0 {
		t.Fatalf("%d STS calls", n)
	}
}

// TestTierChangeNewSession: a session's tags are fixed for its lifetime, so
// a tenant whose tier changed gets a new session.
func TestTierChangeNewSession(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	cache, _ := newCache(t, f, c)
	r := route(4)
	r.Tier = "free"
	for range 3 {
		if _, err := cache.Credentials(context.Background(), r, "us-east-1"); err != nil {
			t.Fatal(err)
		}
	}
	r.Tier = "pro"
	if _, err := cache.Credentials(context.Background(), r, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if n := f.count(r.RoleARN, r.ExternalID); n != 2 {
		t.Fatalf("%d STS calls, want 2 (one per tier)", n)
	}
	if got := tagMap(f.last.Tags)["tier"]; got != "pro" {
		t.Fatalf("tier tag %q", got)
	}
}

// TestPlatformSessionsPerTenant: sessions of the platform's invoker role are
// per tenant, never per request: N lookups of one tenant make one STS call,
// two tenants two; each is tagged, carries the SourceIdentity and no
// ExternalId, and lives beside the tenant's own role session.
func TestPlatformSessionsPerTenant(t *testing.T) {
	const invoker = "arn:aws:iam::999988887777:role/TenantgatePlatformInvoker"
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := newFakeSTS(c)
	f.delay = 10 * time.Millisecond
	cache, _ := newCache(t, f, c)
	a, b := route(1), route(2)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 20 {
		for _, acct := range []string{a.AccountID, b.AccountID} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cr, err := cache.PlatformCredentials(context.Background(), invoker, acct, "free", "us-east-1")
				if err != nil || !strings.Contains(cr.AccessKeyID, SessionName("tenantgate-", acct)) {
					bad.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d lookups failed or got another tenant's session", bad.Load())
	}
	if n := f.count(invoker, ""); n != 2 {
		t.Fatalf("%d AssumeRole calls for 2 tenants, want 2", n)
	}
	got := tagMap(f.last.Tags)
	acct := got["account_id"]
	if (acct != a.AccountID && acct != b.AccountID) || got["tier"] != "free" || aws.ToString(f.last.SourceIdentity) != acct || f.last.ExternalId != nil {
		t.Fatalf("input tags %v source identity %q external id %v", got, aws.ToString(f.last.SourceIdentity), f.last.ExternalId)
	}
	// The tenant's own role and the platform session of the same account
	// are separate entries; neither evicts the other.
	if _, err := cache.Credentials(context.Background(), a, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.PlatformCredentials(context.Background(), invoker, a.AccountID, "free", "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if n := f.count(invoker, ""); n != 2 {
		t.Fatalf("platform session of %s evicted: %d calls", a.AccountID, n)
	}
}
