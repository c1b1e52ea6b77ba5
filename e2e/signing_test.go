package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// runSignOrRefuse checks, through the shipped Envoy configuration, that
// nothing leaves unsigned and that async invocation stays off the shared
// platform identity.
func runSignOrRefuse(t *testing.T, st *stack.Stack, alice, bob string) {
	t.Run("TrailersNeverLeaveUnsigned", func(t *testing.T) {
		u, err := url.Parse(st.EnvoyURL)
		if err != nil {
			t.Fatal(err)
		}
		tlsCfg, err := st.ClientTLS("", "")
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
		cases := []struct {
			name   string
			fields [][2]string
			region string
			body   []byte
		}{
			{"tenant body then trailers", [][2]string{{"authorization", "Bearer " + alice}, {"x-account-id", stack.AcmeAccountID}}, stack.AcmeRegion, body},
			{"tenant trailers without body", [][2]string{{"authorization", "Bearer " + alice}, {"x-account-id", stack.AcmeAccountID}}, stack.AcmeRegion, nil},
			{"platform body then trailers", [][2]string{{"authorization", "Bearer " + bob}}, stack.DefaultRegion, body},
			{"platform trailers without body", [][2]string{{"authorization", "Bearer " + bob}}, stack.DefaultRegion, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := len(st.Records())
				conn, err := tls.Dial("tcp", u.Host, tlsCfg)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				// The client names the regional Bedrock host itself, so an
				// unsigned request would be routed upstream.
				headers := append([][2]string{
					{":method", "POST"}, {":scheme", "https"},
					{":path", "/model/" + strings.ReplaceAll(stack.DemoModel, ":", "%3A") + "/converse"},
					{":authority", "bedrock-runtime." + tc.region + ".amazonaws.com"},
					{"content-type", "application/json"},
				}, tc.fields...)
				status, rb, err := stack.H2Do(conn, stack.H2Request{Headers: headers, Body: tc.body, Trailers: [][2]string{{"x-checksum", "abc"}}}, 30*time.Second)
				if err != nil {
					t.Fatalf("%v (status %d, body %s)", err, status, rb)
				}
				for _, r := range newRecords(st, n) {
					if r.PrincipalARN == "" || r.Status != http.StatusOK {
						t.Fatalf("upstream received a request without a valid signature: status %d principal %q", r.Status, r.PrincipalARN)
					}
				}
				if status != http.StatusBadRequest || !bytes.Contains(rb, []byte(`"trailers_not_supported"`)) {
					t.Fatalf("status %d body %s, want 400 trailers_not_supported", status, rb)
				}
				if recs := newRecords(st, n); len(recs) != 0 {
					t.Fatalf("upstream saw %d requests, want none", len(recs))
				}
			})
		}
	})

	t.Run("AsyncInvokeOnlyForTenantRoles", func(t *testing.T) {
		ctx := context.Background()
		input := func() *bedrockruntime.StartAsyncInvokeInput {
			return &bedrockruntime.StartAsyncInvokeInput{
				ModelId:    aws.String(stack.DemoModel),
				ModelInput: document.NewLazyDocument(map[string]any{"prompt": "hello"}),
				OutputDataConfig: &types.AsyncInvokeOutputDataConfigMemberS3OutputDataConfig{
					Value: types.AsyncInvokeS3OutputDataConfig{S3Uri: aws.String("s3://bucket/out")},
				},
			}
		}
		n := len(st.Records())
		platform := newCaller(t, st, callerOpts{token: bob})
		_, err := platform.StartAsyncInvoke(ctx, input())
		expectDenied(t, platform, err, http.StatusForbidden, "async_invoke_not_allowed")
		_, err = platform.ListAsyncInvokes(ctx, &bedrockruntime.ListAsyncInvokesInput{})
		expectDenied(t, platform, err, http.StatusForbidden, "async_invoke_not_allowed")
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Fatalf("platform-signed async requests reached upstream: %+v", recs)
		}

		tenant := newCaller(t, st, callerOpts{token: alice, headers: map[string]string{"x-account-id": stack.AcmeAccountID}})
		if _, err := tenant.StartAsyncInvoke(ctx, input()); err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.AcmeRegion, acmeAssumed)
		if r.Operation != "StartAsyncInvoke" {
			t.Errorf("operation %s", r.Operation)
		}
	})
}
