package bedrock_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	brtypes "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
)

const deniedModel = "anthropic.claude-3-opus-20240229-v1:0"

// newDenyEnv is newEnv with deniedModel in DenyModels.
func newDenyEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	br, err := bedrock.New(bedrock.Config{Credentials: e.creds, Regions: []string{"us-east-1", "eu-west-1"}, DenyModels: []string{deniedModel}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(br)
	t.Cleanup(srv.Close)
	e.br = br
	e.brAddr = srv.Listener.Addr().String()
	e.brHTTP = redirect(t, e.brAddr)
	return e
}

// TestAccessDeniedNamesPrincipal: a denied model answers 403
// AccessDeniedException whose message names the signer the way AWS does
// (account id, role and session name), for both an assumed role and the
// platform's IAM user; other models still answer.
func TestAccessDeniedNamesPrincipal(t *testing.T) {
	e := newDenyEnv(t)
	tmp := e.assumeRole(t)
	cases := []struct {
		name      string
		creds     aws.Credentials
		region    string
		model     string
		wantCode  string
		wantInMsg []string
	}{
		{"assumed role", tmp, "eu-west-1", deniedModel, "AccessDeniedException",
			[]string{"User: arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/tenantgate-acme is not authorized to perform: bedrock:InvokeModel",
				"arn:aws:bedrock:eu-west-1::foundation-model/" + deniedModel}},
		{"platform user", platformCreds, "us-east-1", deniedModel, "AccessDeniedException",
			[]string{"User: " + platformARN + " is not authorized"}},
		{"other model", platformCreds, "us-east-1", haiku, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.client(c.region, c.region, c.creds, 1).InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
				ModelId: aws.String(c.model), Body: []byte(`{"messages":[{"role":"user","content":"hi"}]}`), ContentType: aws.String("application/json"),
			})
			if got := apiCode(err); got != c.wantCode {
				t.Fatalf("code %q, want %q (%v)", got, c.wantCode, err)
			}
			var ae smithy.APIError
			if c.wantCode != "" && !errors.As(err, &ae) {
				t.Fatal(err)
			}
			for _, w := range c.wantInMsg {
				if !strings.Contains(ae.ErrorMessage(), w) {
					t.Fatalf("message %q lacks %q", ae.ErrorMessage(), w)
				}
			}
		})
	}
}

// TestRecordsBedrockHeaders: the x-amzn-bedrock-* headers a request carried
// are recorded, so tests can see which ones reached Bedrock.
func TestRecordsBedrockHeaders(t *testing.T) {
	e := newEnv(t)
	_, err := e.client("us-east-1", "us-east-1", platformCreds, 1).InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(haiku), Body: []byte(`{"messages":[{"role":"user","content":"hi"}]}`), ContentType: aws.String("application/json"),
		ServiceTier: brtypes.ServiceTierTypePriority, Trace: brtypes.TraceEnabled,
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := e.br.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	want := []string{"x-amzn-bedrock-service-tier", "x-amzn-bedrock-trace"}
	if !slices.Equal(recs[0].BedrockHeaders, want) {
		t.Fatalf("bedrock headers %v, want %v", recs[0].BedrockHeaders, want)
	}
}

// redirect returns a client that dials addr for every Bedrock host.
func redirect(t *testing.T, addr string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: bufferedBody{tr}}
}
