package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	brtypes "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/auth/bearer"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tenantgate/tenantgate/internal/stack"
)

const (
	// e2eBudget bounds one end-to-end row (all its requests) in time.
	e2eBudget = 2 * time.Minute
	// e2eMaxRequests bounds one end-to-end row in count.
	e2eMaxRequests = 5000
	// e2eRequestTimeout bounds one request.
	e2eRequestTimeout = 10 * time.Second
)

// BenchmarkE2E measures sequential Converse calls from the SDK's Bedrock
// runtime client: straight to the fake Bedrock runtime with the SDK signing
// itself with the platform credentials (baseline), and through Envoy +
// tenantgate (ext_authz then ext_proc re-signing) as a user with a JWT
// (platform credentials) and as an API key of an enterprise tenant (its own
// role, credentials cached after the first call). Every address is
// loopback. Each row reports p50_ms and p99_ms of its requests; run it with
// -benchtime=200x for N=200.
func BenchmarkE2E(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin, err := stack.FindEnvoy(ctx)
	if err != nil {
		b.Skipf("end-to-end benchmarks need Envoy 1.40 (set ENVOY_BIN): %v", err)
	}
	st, err := stack.Start(ctx, stack.Options{EnvoyBin: bin})
	if err != nil {
		b.Fatalf("start stack: %v", err)
	}
	defer func() {
		if b.Failed() {
			b.Logf("stack logs:\n%s", st.LogTails(4000))
		}
		if err := st.Stop(); err != nil {
			b.Errorf("stop stack: %v", err)
		}
	}()

	direct := directClient(b, st)
	viaJWT := envoyClient(b, st, func(o *bedrockruntime.Options) {
		tok, err := st.Token(stack.AliceUserID, time.Hour)
		if err != nil {
			b.Fatalf("token: %v", err)
		}
		o.BearerAuthTokenProvider = bearer.StaticTokenProvider{Token: bearer.Token{Value: tok}}
		o.AuthSchemePreference = []string{"httpBearerAuth"}
	})
	viaKey := envoyClient(b, st, func(o *bedrockruntime.Options) {
		// No SDK auth at all: the request carries only the API key.
		o.AuthSchemeResolver = noAuth{}
		o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("x-api-key", stack.AcmeAPIKeyPublic+":"+stack.AcmeAPIKeySecret))
	})

	// Each row first checks who signed its calls and for which region (the
	// fake Bedrock says so in its answer), so a row never times a refusal or
	// the wrong credentials.
	platform := "signed by " + stack.PlatformPrincipal + " "
	acmeRole := "assumed-role/" + stack.AcmeRoleARN[strings.LastIndex(stack.AcmeRoleARN, "/")+1:] + "/"
	b.Run("direct_to_fake_Bedrock_SDK_SigV4", converseRow(direct, stack.DefaultRegion, platform))
	b.Run("via_Envoy+tenantgate_user_JWT", converseRow(viaJWT, stack.DefaultRegion, platform))
	b.Run("via_Envoy+tenantgate_API_key_tenant_role", converseRow(viaKey, stack.AcmeRegion, acmeRole))
}

// noAuth makes the SDK send requests without any signature or token.
type noAuth struct{}

func (noAuth) ResolveAuthSchemes(context.Context, *bedrockruntime.AuthResolverParameters) ([]*smithyauth.Option, error) {
	return []*smithyauth.Option{{SchemeID: smithyauth.SchemeIDAnonymous}}, nil
}

// converseRow times b.N sequential Converse calls and reports percentiles.
// The warm-up calls must be answered in wantRegion and signed by a principal
// containing wantSigner.
func converseRow(c *bedrockruntime.Client, wantRegion, wantSigner string) func(b *testing.B) {
	return func(b *testing.B) {
		if b.N > e2eMaxRequests {
			b.Fatalf("b.N=%d exceeds the %d requests bound; use -benchtime=200x", b.N, e2eMaxRequests)
		}
		ctx, cancel := context.WithTimeout(context.Background(), e2eBudget)
		defer cancel()
		for i := 0; i < 3; i++ { // warm connections, JWKS, token and credential caches
			text, err := converse(ctx, c)
			if err != nil {
				b.Fatalf("warm-up: %v", err)
			}
			if !strings.Contains(text, "fake Bedrock "+wantRegion+",") || !strings.Contains(text, wantSigner) {
				b.Fatalf("answer %q: want region %s and signer %q", text, wantRegion, wantSigner)
			}
		}
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := converse(ctx, c); err != nil {
				b.Fatalf("request %d: %v", i, err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(ms(percentile(lat, 50)), "p50_ms")
		b.ReportMetric(ms(percentile(lat, 99)), "p99_ms")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile (nearest rank) of sorted values.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func converse(ctx context.Context, c *bedrockruntime.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e2eRequestTimeout)
	defer cancel()
	out, err := c.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId: aws.String(stack.DemoModel),
		Messages: []brtypes.Message{{Role: brtypes.ConversationRoleUser,
			Content: []brtypes.ContentBlock{&brtypes.ContentBlockMemberText{Value: "Say hello"}}}},
	})
	if err != nil {
		return "", err
	}
	msg, ok := out.Output.(*brtypes.ConverseOutputMemberMessage)
	if !ok || len(msg.Value.Content) == 0 {
		return "", errors.New("converse: no message in output")
	}
	txt, ok := msg.Value.Content[0].(*brtypes.ContentBlockMemberText)
	if !ok {
		return "", errors.New("converse: first block is not text")
	}
	return txt.Value, nil
}

// envoyClient is an SDK client sending to Envoy's public TLS listener.
func envoyClient(b *testing.B, st *stack.Stack, auth func(*bedrockruntime.Options)) *bedrockruntime.Client {
	b.Helper()
	hc, err := st.HTTPClient("", "")
	if err != nil {
		b.Fatalf("http client: %v", err)
	}
	opts := bedrockruntime.Options{
		Region:           stack.DefaultRegion,
		BaseEndpoint:     aws.String(st.EnvoyURL),
		HTTPClient:       hc,
		RetryMaxAttempts: 1,
	}
	auth(&opts)
	return bedrockruntime.New(opts)
}

// directClient is an SDK client that signs with the platform credentials
// and talks TLS to the stack's fake Bedrock runtime, served here on another
// loopback port with the stack's Bedrock certificate: every
// bedrock-runtime.<region>.amazonaws.com host dials it.
func directClient(b *testing.B, st *stack.Stack) *bedrockruntime.Client {
	b.Helper()
	cert, err := tls.LoadX509KeyPair(st.Certs.BedrockCert, st.Certs.BedrockKey)
	if err != nil {
		b.Fatalf("bedrock cert: %v", err)
	}
	srv := httptest.NewUnstartedServer(st.Fakes.Bedrock)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	clientTLS, err := st.ClientTLS("", "")
	if err != nil {
		b.Fatalf("client tls: %v", err)
	}
	addr := srv.Listener.Addr().String()
	tr := &http.Transport{
		TLSClientConfig:   clientTLS,
		ForceAttemptHTTP2: false,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	b.Cleanup(tr.CloseIdleConnections)
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           stack.DefaultRegion,
		Credentials:      credentials.NewStaticCredentialsProvider(stack.PlatformAccessKey, stack.PlatformSecretKey, ""),
		BaseEndpoint:     aws.String(fmt.Sprintf("https://bedrock-runtime.%s.amazonaws.com", stack.DefaultRegion)),
		HTTPClient:       &http.Client{Transport: tr},
		RetryMaxAttempts: 1,
	})
}
