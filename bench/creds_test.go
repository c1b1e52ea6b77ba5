package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// stubLatency is the fixed latency of the in-process stub STS, roughly an
// AssumeRole round trip to a regional STS endpoint.
const stubLatency = 20 * time.Millisecond

// stubSTS is an in-process STSAPI that answers every AssumeRole after a fixed
// latency and counts the calls.
type stubSTS struct {
	latency time.Duration
	calls   atomic.Int64
}

func (s *stubSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	s.calls.Add(1)
	t := time.NewTimer(s.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	exp := time.Now().Add(time.Hour)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId:     aws.String("ASIA" + aws.ToString(in.ExternalId)),
		SecretAccessKey: aws.String("stub-secret"),
		SessionToken:    aws.String("stub-session-token"),
		Expiration:      &exp,
	}}, nil
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

// benchRoute is the routing row of tenant i.
func benchRoute(i int) tenant.Route {
	return tenant.Route{
		AccountID:  fmt.Sprintf("b0000000-0000-4000-8000-%012d", i),
		RoleARN:    fmt.Sprintf("arn:aws:iam::%012d:role/BedrockAccess", 100000000000+i),
		ExternalID: fmt.Sprintf("ext%d", i),
		Region:     "eu-west-1",
		Enabled:    true,
	}
}

// loopbackSTS serves the STS query protocol on 127.0.0.1 so that the SDK's
// own STS client (request signing, HTTP, XML decoding) is measured.
func loopbackSTS(b *testing.B) (func(string) awscreds.STSAPI, *atomic.Int64) {
	b.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIABENCH</AccessKeyId><SecretAccessKey>loopback-secret</SecretAccessKey><SessionToken>loopback-token</SessionToken><Expiration>%s</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`, exp)
	}))
	b.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDPLATFORM", "platform-secret", ""),
		BaseEndpoint: aws.String(srv.URL),
		HTTPClient:   srv.Client(),
	}
	return awscreds.STSClients(cfg), &calls
}

// BenchmarkCredentials measures getting a tenant's AWS credentials: a cache
// hit (baseline) and a cold AssumeRole, once against an in-process stub STS
// with a fixed 20 ms latency and once through the SDK's STS client against a
// loopback STS endpoint with no added latency.
func BenchmarkCredentials(b *testing.B) {
	ctx := context.Background()
	b.Run("cache_hit", func(b *testing.B) {
		stub := &stubSTS{latency: stubLatency}
		c := newCredsCache(func(string) awscreds.STSAPI { return stub })
		r := benchRoute(1)
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
		if n := stub.calls.Load(); n != 1 {
			b.Fatalf("cache hits made %d STS calls, want 1", n)
		}
	})
	b.Run("cold_AssumeRole_stub_STS_20ms", func(b *testing.B) {
		stub := &stubSTS{latency: stubLatency}
		c := newCredsCache(func(string) awscreds.STSAPI { return stub })
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Credentials(ctx, benchRoute(i), "eu-west-1"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if n := stub.calls.Load(); n != int64(b.N) {
			b.Fatalf("%d STS calls for %d cold tenants", n, b.N)
		}
	})
	b.Run("cold_AssumeRole_SDK_client_loopback_STS", func(b *testing.B) {
		clients, calls := loopbackSTS(b)
		c := newCredsCache(clients)
		if _, err := c.Credentials(ctx, benchRoute(-1), "eu-west-1"); err != nil { // connection and client warm
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Credentials(ctx, benchRoute(i), "eu-west-1"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if n := calls.Load(); n != int64(b.N)+1 {
			b.Fatalf("%d STS HTTP calls for %d cold tenants", n, b.N+1)
		}
	})
}

// BenchmarkSTSFanIn sends 20 concurrent requests for each of 50 tenants at
// once and reports the STS calls they caused (sts_calls/op; single flight
// means 50 when cold and 0 when warm). The stub STS has the fixed 20 ms
// latency, so the cold row is dominated by one STS round trip.
func BenchmarkSTSFanIn(b *testing.B) {
	const tenants, perTenant = 50, 20
	storm := func(b *testing.B, c *awscreds.Cache) {
		var wg sync.WaitGroup
		var failed atomic.Int64
		for t := 0; t < tenants; t++ {
			r := benchRoute(t)
			for k := 0; k < perTenant; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cr, err := c.Credentials(context.Background(), r, "eu-west-1")
					if err != nil || cr.AccessKeyID != "ASIA"+r.ExternalID {
						failed.Add(1)
					}
				}()
			}
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d requests got an error or another tenant's credentials", n, tenants*perTenant)
		}
	}
	b.Run("50_tenants_x_20_concurrent_cold", func(b *testing.B) {
		stub := &stubSTS{latency: stubLatency}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			c := newCredsCache(func(string) awscreds.STSAPI { return stub })
			b.StartTimer()
			storm(b, c)
		}
		b.StopTimer()
		b.ReportMetric(float64(stub.calls.Load())/float64(b.N), "sts_calls/op")
	})
	b.Run("50_tenants_x_20_concurrent_warm", func(b *testing.B) {
		stub := &stubSTS{latency: stubLatency}
		c := newCredsCache(func(string) awscreds.STSAPI { return stub })
		storm(b, c)
		before := stub.calls.Load()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			storm(b, c)
		}
		b.StopTimer()
		b.ReportMetric(float64(stub.calls.Load()-before)/float64(b.N), "sts_calls/op")
	})
}
