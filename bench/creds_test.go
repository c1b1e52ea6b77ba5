package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	"github.com/tenantgate/tenantgate/internal/fakeaws/fault"
	fakests "github.com/tenantgate/tenantgate/internal/fakeaws/sts"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// stsLatency is the latency injected into the fake STS for the rows that
// model a real AssumeRole round trip to a regional STS endpoint.
const stsLatency = 20 * time.Millisecond

const (
	fakePlatformKey    = "AKIAFAKEBENCHPLATFORM"
	fakePlatformSecret = "fake-bench-platform-secret"
	fakePlatformARN    = "arn:aws:iam::000000000000:user/tenantgate-platform"
	sharedRoleARN      = "arn:aws:iam::111122223333:role/BenchBedrockAccess"
	sharedExternalID   = "bench-external-id"
)

// fakeSTS is internal/fakeaws's STS (SigV4-verifying, role-enforcing) served
// on 127.0.0.1 and reached through the SDK's STS client, as in production.
type fakeSTS struct {
	srv     *fakests.Server
	clients func(string) awscreds.STSAPI
}

// newFakeSTS serves the shared role and fanInTenants per-tenant roles,
// with latency added before every answer.
func newFakeSTS(b *testing.B, latency time.Duration) *fakeSTS {
	b.Helper()
	store := credstore.New(nil)
	store.AddStatic(fakePlatformKey, fakePlatformSecret, fakePlatformARN)
	roles := []fakests.Role{{ARN: sharedRoleARN, ExternalID: sharedExternalID, TagSession: true, SetSourceIdentity: true}}
	for i := 0; i < fanInTenants; i++ {
		r := tenantRoute(i)
		roles = append(roles, fakests.Role{ARN: r.RoleARN, ExternalID: r.ExternalID, TagSession: true, SetSourceIdentity: true})
	}
	faults := &fault.Injector{}
	faults.SetLatency(latency)
	srv, err := fakests.New(fakests.Config{Credentials: store, Roles: roles, Faults: faults})
	if err != nil {
		b.Fatalf("fake sts: %v", err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(hs.Close)
	cfg := aws.Config{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider(fakePlatformKey, fakePlatformSecret, ""),
		BaseEndpoint: aws.String(hs.URL),
		HTTPClient:   hs.Client(),
	}
	return &fakeSTS{srv: srv, clients: awscreds.STSClients(cfg)}
}

func assumeRoleConfig() config.AssumeRole {
	return config.AssumeRole{
		Duration:          config.Duration(time.Hour),
		RefreshBefore:     config.Duration(5 * time.Minute),
		RefreshJitter:     config.Duration(time.Minute),
		FailureTTL:        config.Duration(5 * time.Second),
		Timeout:           config.Duration(5 * time.Second),
		SessionNamePrefix: "tenantgate-",
	}
}

func newCredsCache(sts func(string) awscreds.STSAPI) *awscreds.Cache {
	return awscreds.New(awscreds.Options{
		Config:       assumeRoleConfig(),
		STSForRegion: sts,
		Logger:       slog.New(slog.DiscardHandler),
	})
}

// sharedRoleRoute is tenant i's routing row on the shared role: a new
// account id is a new cache entry, hence a cold AssumeRole.
func sharedRoleRoute(i int) tenant.Route {
	return tenant.Route{
		AccountID:  fmt.Sprintf("b0000000-0000-4000-8000-%012d", i),
		RoleARN:    sharedRoleARN,
		ExternalID: sharedExternalID,
		Region:     "eu-west-1",
		Enabled:    true,
	}
}

// tenantRoute is tenant i's routing row with its own role and ExternalId.
func tenantRoute(i int) tenant.Route {
	return tenant.Route{
		AccountID:  fmt.Sprintf("c0000000-0000-4000-8000-%012d", i),
		RoleARN:    fmt.Sprintf("arn:aws:iam::%012d:role/BedrockAccess", 100000000000+i),
		ExternalID: fmt.Sprintf("ext-%d", i),
		Region:     "eu-west-1",
		Enabled:    true,
	}
}

// BenchmarkCredentials measures getting a tenant's AWS credentials: a cache
// hit (baseline) and a cold AssumeRole through the SDK's STS client against
// internal/fakeaws's STS on loopback, with no added latency (the cost of the
// SDK client, SigV4 and XML on both sides) and with 20 ms injected latency
// (a regional STS round trip).
func BenchmarkCredentials(b *testing.B) {
	ctx := context.Background()
	b.Run("cache_hit", func(b *testing.B) {
		f := newFakeSTS(b, 0)
		c := newCredsCache(f.clients)
		r := sharedRoleRoute(0)
		if _, err := c.Credentials(ctx, r, "eu-west-1"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Credentials(ctx, r, "eu-west-1"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if n := f.srv.CallCount(sharedRoleARN); n != 1 {
			b.Fatalf("cache hits made %d STS calls, want 1", n)
		}
	})
	cold := func(latency time.Duration) func(b *testing.B) {
		return func(b *testing.B) {
			f := newFakeSTS(b, latency)
			c := newCredsCache(f.clients)
			// The first call builds the SDK client and opens the connection.
			if _, err := c.Credentials(ctx, sharedRoleRoute(-1), "eu-west-1"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Credentials(ctx, sharedRoleRoute(i), "eu-west-1"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n := f.srv.CallCount(sharedRoleARN); n != b.N+1 {
				b.Fatalf("%d STS calls for %d cold tenants", n, b.N+1)
			}
		}
	}
	b.Run("cold_AssumeRole_fake_STS_loopback", cold(0))
	b.Run("cold_AssumeRole_fake_STS_+20ms", cold(stsLatency))
}

// fanInTenants and fanInPerTenant shape BenchmarkSTSFanIn.
const fanInTenants, fanInPerTenant = 50, 20

// BenchmarkSTSFanIn sends 20 concurrent requests for each of 50 tenants at
// once, through the SDK's STS client to the fake STS with 20 ms latency, and
// reports the STS calls they caused (sts_calls/op; single flight means 50
// when the cache is cold and 0 when it is warm).
func BenchmarkSTSFanIn(b *testing.B) {
	// storm runs the fan-in and checks that each tenant's 20 requests got
	// the one credential STS issued for that tenant's role.
	storm := func(b *testing.B, c *awscreds.Cache, f *fakeSTS) {
		keys := make([][fanInPerTenant]string, fanInTenants)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for t := 0; t < fanInTenants; t++ {
			r := tenantRoute(t)
			for k := 0; k < fanInPerTenant; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cr, err := c.Credentials(context.Background(), r, "eu-west-1")
					if err != nil {
						failed.Add(1)
						return
					}
					keys[t][k] = cr.AccessKeyID
				}()
			}
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d requests failed", n, fanInTenants*fanInPerTenant)
		}
		issued := map[string]string{} // role ARN -> last issued key id
		for _, call := range f.srv.Calls() {
			if call.IssuedKeyID != "" {
				issued[call.RoleARN] = call.IssuedKeyID
			}
		}
		for t := range keys {
			want := issued[tenantRoute(t).RoleARN]
			for _, got := range keys[t] {
				if got == "" || got != want {
					b.Fatalf("tenant %d got credential %q, STS issued %q for its role", t, got, want)
				}
			}
		}
	}
	b.Run("50_tenants_x_20_concurrent_cold", func(b *testing.B) {
		f := newFakeSTS(b, stsLatency)
		var calls int
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			f.srv.ResetCalls()
			c := newCredsCache(f.clients)
			b.StartTimer()
			storm(b, c, f)
			calls += len(f.srv.Calls())
		}
		b.StopTimer()
		b.ReportMetric(float64(calls)/float64(b.N), "sts_calls/op")
	})
	b.Run("50_tenants_x_20_concurrent_warm", func(b *testing.B) {
		f := newFakeSTS(b, stsLatency)
		c := newCredsCache(f.clients)
		storm(b, c, f)
		before := len(f.srv.Calls())
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			storm(b, c, f)
		}
		b.StopTimer()
		b.ReportMetric(float64(len(f.srv.Calls())-before)/float64(b.N), "sts_calls/op")
	})
}
