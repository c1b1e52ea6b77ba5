package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/auth/bearer"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	"github.com/tenantgate/tenantgate/internal/stack"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

// requireIntegration reports whether missing Envoy must fail the test.
func requireIntegration() bool { return os.Getenv("TENANTGATE_REQUIRE_INTEGRATION") == "1" }

// startStack starts the stack or skips (Envoy unavailable) / fails.
func startStack(t *testing.T, o stack.Options) *stack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if o.EnvoyBin == "" {
		o.EnvoyBin = stack.RequireEnvoy(t)
	}
	st, err := stack.Start(ctx, o)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stack logs:\n%s", st.LogTails(6000))
		}
		if err := st.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
	})
	return st
}

// capture remembers the body of the last error response the SDK received
// and the protocol of the last response.
type capture struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	body  []byte
	proto string
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.proto = resp.Proto
		c.mu.Unlock()
	}
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rerr != nil {
		return nil, rerr
	}
	c.mu.Lock()
	c.body = b
	c.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

func (c *capture) lastErrorCode() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(c.body, &v)
	return v.Error
}

func (c *capture) lastProto() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto
}

// caller is one configured SDK client.
type caller struct {
	*bedrockruntime.Client
	cap *capture
}

type callerOpts struct {
	token             string            // bearer token (SDK bearer auth)
	headers           map[string]string // extra request headers
	certFile, keyFile string            // client certificate
	url               string            // endpoint; default Envoy's public listener
}

func newCaller(t *testing.T, st *stack.Stack, o callerOpts) caller {
	t.Helper()
	hc, err := st.HTTPClient(o.certFile, o.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cp := &capture{rt: hc.Transport}
	hc.Transport = cp
	endpoint := o.url
	if endpoint == "" {
		endpoint = st.EnvoyURL
	}
	opts := bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		HTTPClient:       hc,
		RetryMaxAttempts: 1,
	}
	if o.token != "" {
		opts.BearerAuthTokenProvider = bearer.StaticTokenProvider{Token: bearer.Token{Value: o.token}}
		opts.AuthSchemePreference = []string{"httpBearerAuth"}
	} else {
		// No credential in the SDK: the request goes out unauthenticated
		// (an x-api-key header, a client certificate or nothing at all).
		opts.AuthSchemeResolver = anonymousAuth{}
	}
	for k, v := range o.headers {
		opts.APIOptions = append(opts.APIOptions, smithyhttp.AddHeaderValue(k, v))
	}
	return caller{Client: bedrockruntime.New(opts), cap: cp}
}

// anonymousAuth makes the SDK send requests without any authentication.
type anonymousAuth struct{}

func (anonymousAuth) ResolveAuthSchemes(context.Context, *bedrockruntime.AuthResolverParameters) ([]*smithyauth.Option, error) {
	return []*smithyauth.Option{{SchemeID: smithyauth.SchemeIDAnonymous}}, nil
}

func userMessage(text string) []types.Message {
	return []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}}
}

func (c caller) converse(ctx context.Context, model string) (string, error) {
	out, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMessage("Hello")})
	if err != nil {
		return "", err
	}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok || len(msg.Value.Content) == 0 {
		return "", errors.New("converse: no message in output")
	}
	txt, ok := msg.Value.Content[0].(*types.ContentBlockMemberText)
	if !ok {
		return "", errors.New("converse: first block is not text")
	}
	return txt.Value, nil
}

// statusOf returns the HTTP status of an SDK error (0 if none).
func statusOf(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// expectDenied asserts an SDK call failed with status and JSON error code.
func expectDenied(t *testing.T, c caller, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %d %s, call succeeded", status, code)
	}
	if got := statusOf(err); got != status {
		t.Fatalf("status = %d, want %d (err %v)", got, status, err)
	}
	if code != "" {
		if got := c.cap.lastErrorCode(); got != code {
			t.Fatalf("error code = %q, want %q", got, code)
		}
		// The SDK reports the catalogued AWS error type.
		entry, ok := apierror.Lookup(apierror.Code(code))
		if !ok {
			t.Fatalf("code %q is not in the catalogue", code)
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != string(entry.Type) || ae.ErrorMessage() == "" {
			t.Fatalf("SDK error %v, want API error %s with a message", err, entry.Type)
		}
	}
}

// newRecords returns the records added after the first n.
func newRecords(st *stack.Stack, n int) []bedrock.Record {
	all := st.Records()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

// oneRecord returns the single record added after the first n.
func oneRecord(t *testing.T, st *stack.Stack, n int) bedrock.Record {
	t.Helper()
	recs := newRecords(st, n)
	if len(recs) != 1 {
		t.Fatalf("want 1 upstream request, fake Bedrock saw %d: %+v", len(recs), recs)
	}
	return recs[0]
}

// assertClean checks that nothing of the caller's credentials reached AWS.
func assertClean(t *testing.T, r bedrock.Record) {
	t.Helper()
	if r.BearerAuthorization || r.APIKeyHeader {
		t.Errorf("caller credentials reached upstream: bearer=%v x-api-key=%v", r.BearerAuthorization, r.APIKeyHeader)
	}
	for _, h := range r.NonAWSHeaders {
		if h == "authorization" || h == "x-api-key" || h == "x-service-key" || h == "cookie" || strings.HasPrefix(h, "x-tenantgate") {
			t.Errorf("header %q reached upstream", h)
		}
	}
}

func assertSignedBy(t *testing.T, r bedrock.Record, region, principalPrefix string) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Errorf("upstream status %d (%s)", r.Status, r.ErrorType)
	}
	if r.Region != region || r.Host != "bedrock-runtime."+region+".amazonaws.com" {
		t.Errorf("upstream region/host = %s/%s, want %s", r.Region, r.Host, region)
	}
	if !strings.HasPrefix(r.PrincipalARN, principalPrefix) {
		t.Errorf("signed by %q, want prefix %q", r.PrincipalARN, principalPrefix)
	}
	assertClean(t, r)
}

const acmeAssumed = "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/"

// seededPostgres returns the URL of a fresh database migrated by
// `tenantgate migrate --dev` and seeded with the demo tenants, and the
// tenantgate binary built for it.
func seededPostgres(t *testing.T) (dbURL, bin string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	if _, err := stack.FindEnvoy(context.Background()); err != nil && !requireIntegration() {
		t.Skipf("end-to-end tests need Envoy 1.40 (set ENVOY_BIN): %v", err)
	}
	dbURL = testpg.Start(t)
	bin = filepath.Join(t.TempDir(), "tenantgate")
	root, err := stack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/tenantgate")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tenantgate: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "migrate", "--database-url", dbURL, "--dev").CombinedOutput(); err != nil {
		t.Fatalf("tenantgate migrate --dev: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stack.SeedSQL); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return dbURL, bin
}

// demoTenantsFile writes the embedded demo tenants plus extra (more YAML list
// entries under accounts) to a tenants file and returns its path.
func demoTenantsFile(t *testing.T, extra string) string {
	t.Helper()
	src := append(append([]byte(nil), filestore.DefaultTenants...), extra...)
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
