package envoy_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/auth/bearer"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/apierror"
)

// countingAuthz is an ext_authz server that allows every request and counts them.
type countingAuthz struct {
	authv3.UnimplementedAuthorizationServer
	checks atomic.Int64
}

func (a *countingAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.checks.Add(1)
	return &authv3.CheckResponse{Status: status.New(codes.OK, "").Proto(),
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// TestExtProcFailureAnswersUnavailable runs the shipped bootstrap against a
// tenantgate whose ext_authz allows the request but whose ext_proc service
// fails (not served): Envoy fails closed, and its own reply reads like
// tenantgate's catalogued unavailable, so SDKs see a retryable
// ServiceUnavailableException instead of an unknown 500.
func TestExtProcFailureAnswersUnavailable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	authz := &countingAuthz{}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, authz)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)

	addr, _, tlsCfg := limitedEnvoy(t, nil, lis.Addr().(*net.TCPAddr).Port)
	client := bedrockruntime.New(bedrockruntime.Options{
		Region:                  "us-east-1",
		BaseEndpoint:            aws.String("https://" + addr),
		HTTPClient:              &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone()}},
		BearerAuthTokenProvider: bearer.StaticTokenProvider{Token: bearer.Token{Value: "allowed-by-the-fake-authz"}},
		AuthSchemePreference:    []string{"httpBearerAuth"},
		RetryMaxAttempts:        1,
	})
	_, err = client.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String("anthropic.claude-3-haiku-20240307-v1:0"),
		Messages: []types.Message{{Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}},
	})
	if authz.checks.Load() == 0 {
		t.Fatalf("ext_authz was never called (%v): the test did not reach ext_proc", err)
	}
	want := apierror.New(apierror.Unavailable)
	var unavailable *types.ServiceUnavailableException
	if !errors.As(err, &unavailable) || unavailable.ErrorMessage() != want.Text {
		t.Fatalf("ext_proc failure: %v, want ServiceUnavailableException %q", err, want.Text)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != want.Status {
		t.Errorf("ext_proc failure: %v, want status %d", err, want.Status)
	}
}
