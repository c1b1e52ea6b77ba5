package e2e_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// freeModels restricts the free tier so that the model_not_allowed denial is
// reachable; the enterprise tiers are listed with every model.
var freeModels = map[string][]string{"free": {"anthropic.*"}, "tier_125_800": {"*"}, "tier_200_1000": {"*"}}

// TestTenantsFileStore runs the suite with the demo tenants in a tenants file.
func TestTenantsFileStore(t *testing.T) {
	// Plus Globex, routed to a region the shipped Envoy has no virtual host
	// for (the demo role is reused so that AssumeRole succeeds).
	file := demoTenantsFile(t, `
  - id: `+globexAccountID+`
    name: Globex
    slug: globex
    personal: false
    primary_owner: `+stack.CarolUserID+`
    tier: tier_200_1000
    route:
      role_arn: `+stack.AcmeRoleARN+`
      external_id: `+stack.AcmeExternalID+`
      region: ca-central-1
      enabled: true
`)
	st := startStack(t, stack.Options{TenantsFile: file, Models: freeModels})
	t.Run("RegionWithoutVirtualHost", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: token(t, st, stack.CarolUserID), headers: map[string]string{"x-account-id": globexAccountID}})
		_, err := c.converse(context.Background(), stack.DemoModel)
		expectDenied(t, c, err, 404, "not_routed")
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Errorf("request for an unserved region left Envoy: %+v", recs)
		}
	})
	t.Run("AWSErrorsScrubbed", func(t *testing.T) { awsErrorsScrubbed(t, st) })
	runSuite(t, st)
}

const globexAccountID = "a0000000-0000-4000-8000-000000000099"

// TestPostgresStore runs the suite with the demo tenants in PostgreSQL,
// migrated by `tenantgate migrate --dev`.
func TestPostgresStore(t *testing.T) {
	url, bin := seededPostgres(t)
	st := startStack(t, stack.Options{DatabaseURL: url, TenantgateBin: bin, Models: freeModels})
	runSuite(t, st)
}

func token(t *testing.T, st *stack.Stack, user string) string {
	t.Helper()
	tok, err := st.Token(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runSuite is every end-to-end check through Envoy; the fail-closed check
// runs last because it stops tenantgate.
func runSuite(t *testing.T, st *stack.Stack) {
	alice, bob, carol := token(t, st, stack.AliceUserID), token(t, st, stack.BobUserID), token(t, st, stack.CarolUserID)
	acme := map[string]string{"x-account-id": stack.AcmeAccountID}

	t.Run("ConverseEnterpriseTeam", func(t *testing.T) {
		ctx := context.Background()
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		text, err := c.converse(ctx, stack.DemoModel)
		if err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.AcmeRegion, acmeAssumed)
		if !r.SessionTokenPresent || r.ModelID != stack.DemoModel || r.Operation != "Converse" {
			t.Errorf("record %+v", r)
		}
		if !strings.Contains(text, r.PrincipalARN) || !strings.Contains(text, stack.AcmeRegion) {
			t.Errorf("answer %q does not name the signer", text)
		}
		if !strings.Contains(r.RawPath, "%3A") {
			t.Errorf("model id colon should travel as %%3A, path %q", r.RawPath)
		}
	})

	t.Run("ConverseFreePersonal", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: bob})
		if _, err := c.converse(context.Background(), stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.DefaultRegion, stack.PlatformPrincipal)
		if r.AccessKeyID != stack.PlatformAccessKey || r.SessionTokenPresent {
			t.Errorf("free tenant must be signed with the platform key: %+v", r)
		}
	})

	t.Run("TeamAccountMember", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: bob, headers: acme})
		if _, err := c.converse(context.Background(), stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		assertSignedBy(t, oneRecord(t, st, n), stack.AcmeRegion, acmeAssumed)
	})

	t.Run("APIKey", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{headers: map[string]string{"x-api-key": stack.AcmeAPIKeyPublic + ":" + stack.AcmeAPIKeySecret}})
		if _, err := c.converse(context.Background(), stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		assertSignedBy(t, oneRecord(t, st, n), stack.AcmeRegion, acmeAssumed)
	})

	// Env-only clients (AWS_BEARER_TOKEN_BEDROCK) send the team's API key as
	// the bearer token.
	t.Run("APIKeyAsBearer", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: stack.AcmeAPIKeyPublic + ":" + stack.AcmeAPIKeySecret})
		if _, err := c.converse(context.Background(), stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		assertSignedBy(t, oneRecord(t, st, n), stack.AcmeRegion, acmeAssumed)
	})

	// The public listener offers h2 and http/1.1 by ALPN: HTTP/2 clients
	// without prior knowledge (the JS SDK v3's handler) get HTTP/2.
	t.Run("ALPN", func(t *testing.T) {
		u, err := url.Parse(st.EnvoyURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			offer []string
			want  string
		}{
			{[]string{"h2", "http/1.1"}, "h2"},
			{[]string{"http/1.1"}, "http/1.1"},
			{nil, ""},
		} {
			cfg, err := st.ClientTLS("", "")
			if err != nil {
				t.Fatal(err)
			}
			cfg.NextProtos = tc.offer
			cfg.ServerName = u.Hostname()
			conn, err := tls.Dial("tcp", u.Host, cfg)
			if err != nil {
				t.Fatalf("offer %v: %v", tc.offer, err)
			}
			if got := conn.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("offer %v: negotiated %q, want %q", tc.offer, got, tc.want)
			}
			conn.Close()
		}
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: bob})
		if _, err := c.converse(context.Background(), stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		if got := c.cap.lastProto(); got != "HTTP/2.0" {
			t.Errorf("converse went over %q, want HTTP/2.0", got)
		}
		oneRecord(t, st, n)
	})

	t.Run("InferenceProfileARN", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		if _, err := c.converse(context.Background(), stack.DemoInferenceProfile); err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.AcmeRegion, acmeAssumed)
		if r.ModelID != stack.DemoInferenceProfile || !strings.Contains(r.RawPath, "%2F") {
			t.Errorf("model id %q raw path %q", r.ModelID, r.RawPath)
		}
	})

	t.Run("ConverseStream", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(stack.DemoModel), Messages: userMessage("Hello")})
		if err != nil {
			t.Fatal(err)
		}
		stream := out.GetStream()
		defer stream.Close()
		var first, last time.Time
		var text strings.Builder
		deltas := 0
		for ev := range stream.Events() {
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			last = now
			if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
				if td, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
					text.WriteString(td.Value)
					deltas++
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if deltas < 3 {
			t.Fatalf("want several text deltas, got %d", deltas)
		}
		// The fake pauses 50ms between events: a buffered (non-streamed)
		// response would deliver them all at once.
		if gap := last.Sub(first); gap < 100*time.Millisecond {
			t.Errorf("events arrived within %v: not streamed", gap)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.AcmeRegion, acmeAssumed)
		if !strings.Contains(text.String(), r.PrincipalARN) {
			t.Errorf("streamed answer %q", text.String())
		}
	})

	t.Run("InvokeModel", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		body := `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}`
		out, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
			ModelId: aws.String(stack.DemoModel), Body: []byte(body), ContentType: aws.String("application/json"), Accept: aws.String("application/json")})
		if err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.AcmeRegion, acmeAssumed)
		var resp struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if err := json.Unmarshal(out.Body, &resp); err != nil || len(resp.Content) == 0 || !strings.Contains(resp.Content[0].Text, "AcmeBedrockAccess") {
			t.Errorf("invoke body %s (%v)", out.Body, err)
		}
	})

	t.Run("InvokeModelWithResponseStream", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: bob})
		body := `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}`
		out, err := c.InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{
			ModelId: aws.String(stack.DemoModel), Body: []byte(body), ContentType: aws.String("application/json")})
		if err != nil {
			t.Fatal(err)
		}
		stream := out.GetStream()
		defer stream.Close()
		chunks := 0
		for ev := range stream.Events() {
			if ch, ok := ev.(*types.ResponseStreamMemberChunk); ok && len(ch.Value.Bytes) > 0 {
				chunks++
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if chunks < 2 {
			t.Errorf("chunks = %d", chunks)
		}
		assertSignedBy(t, oneRecord(t, st, n), stack.DefaultRegion, stack.PlatformPrincipal)
	})

	t.Run("CountTokens", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		out, err := c.CountTokens(context.Background(), &bedrockruntime.CountTokensInput{
			ModelId: aws.String(stack.DemoModel),
			Input:   &types.CountTokensInputMemberConverse{Value: types.ConverseTokensRequest{Messages: userMessage("Hello there")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.InputTokens == nil || *out.InputTokens < 1 {
			t.Errorf("input tokens %v", out.InputTokens)
		}
		assertSignedBy(t, oneRecord(t, st, n), stack.AcmeRegion, acmeAssumed)
	})

	t.Run("Denials", func(t *testing.T) {
		ctx := context.Background()
		n := len(st.Records())
		cases := []struct {
			name   string
			o      callerOpts
			model  string
			status int
			code   string
		}{
			{"no credential", callerOpts{}, stack.DemoModel, 401, "missing_credential"},
			{"bad token", callerOpts{token: "not.a.jwt"}, stack.DemoModel, 401, "invalid_token"},
			{"forged HS256 token", callerOpts{token: forged(t, st)}, stack.DemoModel, 401, "invalid_token"},
			{"expired token", callerOpts{token: expiredToken(t, st)}, stack.DemoModel, 401, "token_expired"},
			{"not a member", callerOpts{token: carol, headers: acme}, stack.DemoModel, 403, "not_a_member"},
			{"bad api key", callerOpts{headers: map[string]string{"x-api-key": stack.AcmeAPIKeyPublic + ":sk_wrongSecretKey0000000000000000000"}}, stack.DemoModel, 401, "invalid_api_key"},
			{"bad api key as bearer", callerOpts{token: stack.AcmeAPIKeyPublic + ":sk_wrongSecretKey000000000000000000"}, stack.DemoModel, 401, "invalid_api_key"},
			{"api key as bearer naming another account", callerOpts{token: stack.AcmeAPIKeyPublic + ":" + stack.AcmeAPIKeySecret, headers: map[string]string{"x-account-id": stack.BobPersonal}}, stack.DemoModel, 403, "not_a_member"},
			{"model not allowed for free tier", callerOpts{token: bob}, "meta.llama3-8b-instruct-v1:0", 403, "model_not_allowed"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := newCaller(t, st, tc.o)
				_, err := c.converse(ctx, tc.model)
				expectDenied(t, c, err, tc.status, tc.code)
			})
		}
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Errorf("denied requests reached upstream: %+v", recs)
		}
	})

	t.Run("UnsupportedOperation", func(t *testing.T) {
		n := len(st.Records())
		hc, err := st.HTTPClient("", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/custom-models", "/model/" + stack.DemoModel + "/delete", "/../etc/passwd"} {
			req, _ := http.NewRequest(http.MethodGet, st.EnvoyURL+path, nil)
			req.Header.Set("Authorization", "Bearer "+bob)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Error string `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != 404 || body.Error == "" {
				t.Errorf("GET %s: %d %q, want 404 with a JSON error", path, resp.StatusCode, body.Error)
			}
		}
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Errorf("unsupported operations reached upstream: %+v", recs)
		}
	})

	t.Run("BodyOverLimit413", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		big := make([]byte, 11<<20)
		for i := range big {
			big[i] = 'a'
		}
		_, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
			ModelId: aws.String(stack.DemoModel), Body: big, ContentType: aws.String("application/json")})
		if got := statusOf(err); got != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d (%v), want 413", got, err)
		}
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Errorf("oversized body reached upstream: %d requests", len(recs))
		}
	})

	t.Run("SpoofedIdentityHeadersIgnored", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: bob, headers: map[string]string{
			"x-account-tier": stack.AcmeTier, "x-enterprise": "true", "x-account-role": "owner",
			"x-user-id": stack.AliceUserID, "x-amz-security-token": "spoofed",
		}})
		if _, err := c.converse(context.Background(), stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.DefaultRegion, stack.PlatformPrincipal)
		for _, h := range r.NonAWSHeaders {
			if strings.HasPrefix(h, "x-account-") || h == "x-enterprise" || h == "x-user-id" {
				t.Errorf("identity header %s reached upstream", h)
			}
		}
	})

	t.Run("RetryAfterUpstream503", func(t *testing.T) {
		n := len(st.Records())
		st.Fakes.Bedrock.Faults().FailNext(1)
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		if _, err := c.converse(context.Background(), stack.DemoModel); err != nil {
			t.Fatalf("Envoy's retry should have succeeded: %v", err)
		}
		recs := newRecords(st, n)
		if len(recs) != 2 || recs[0].Status != 503 || recs[1].Status != 200 {
			t.Fatalf("want 503 then 200 upstream, got %+v", recs)
		}
		assertSignedBy(t, recs[1], stack.AcmeRegion, acmeAssumed)
	})

	t.Run("ServiceCallers", func(t *testing.T) {
		ctx := context.Background()
		t.Run("trusted SPIFFE worker acts for Acme", func(t *testing.T) {
			n := len(st.Records())
			c := newCaller(t, st, callerOpts{url: st.MeshURL, headers: acme, certFile: st.Certs.WorkerCert, keyFile: st.Certs.WorkerKey})
			if _, err := c.converse(ctx, stack.DemoModel); err != nil {
				t.Fatal(err)
			}
			assertSignedBy(t, oneRecord(t, st, n), stack.AcmeRegion, acmeAssumed)
		})
		t.Run("untrusted certificate refused", func(t *testing.T) {
			n := len(st.Records())
			c := newCaller(t, st, callerOpts{url: st.MeshURL, headers: acme, certFile: st.Certs.UntrustedCert, keyFile: st.Certs.UntrustedKey})
			if _, err := c.converse(ctx, stack.DemoModel); err == nil {
				t.Fatal("untrusted client certificate was accepted")
			}
			if recs := newRecords(st, n); len(recs) != 0 {
				t.Errorf("reached upstream: %+v", recs)
			}
		})
		t.Run("no certificate refused", func(t *testing.T) {
			c := newCaller(t, st, callerOpts{url: st.MeshURL, headers: acme})
			if _, err := c.converse(ctx, stack.DemoModel); err == nil {
				t.Fatal("mesh listener accepted a client without certificate")
			}
		})
		t.Run("user token naming another account refused", func(t *testing.T) {
			n := len(st.Records())
			c := newCaller(t, st, callerOpts{url: st.MeshURL, token: carol, headers: acme, certFile: st.Certs.WorkerCert, keyFile: st.Certs.WorkerKey})
			_, err := c.converse(ctx, stack.DemoModel)
			expectDenied(t, c, err, 403, "not_a_member")
			if recs := newRecords(st, n); len(recs) != 0 {
				t.Errorf("reached upstream: %+v", recs)
			}
		})
	})

	t.Run("SignOrRefuse", func(t *testing.T) { runSignOrRefuse(t, st, alice, bob) })
	expired := expiredToken(t, st)
	t.Run("Python", func(t *testing.T) { runPython(t, st, alice, bob, carol, expired) })

	t.Run("NoCredentialsInLogs", func(t *testing.T) {
		logs := st.LogTails(64 << 20)
		if !strings.Contains(logs, "tenantgate.log") || !strings.Contains(logs, "envoy.log") {
			t.Fatal("stack logs not found")
		}
		secrets := map[string]string{
			"alice's token": alice, "bob's token": bob, "carol's token": carol, "expired token": expired,
			"API key secret": stack.AcmeAPIKeySecret, "HS256 secret": stack.HS256Secret,
			"platform secret key": stack.PlatformSecretKey,
		}
		for name, v := range secrets {
			if strings.Contains(logs, v) {
				t.Errorf("%s appears in the logs", name)
			}
		}
	})

	t.Run("FailClosedWithoutTenantgate", func(t *testing.T) {
		if err := st.StopTenantgate(); err != nil {
			t.Fatal(err)
		}
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		_, err := c.converse(context.Background(), stack.DemoModel)
		if err == nil {
			t.Fatal("request succeeded with tenantgate stopped")
		}
		if got := statusOf(err); got != 503 {
			t.Errorf("status %d, want 503", got)
		}
		// Envoy's fail-closed answer reads like tenantgate's own 503.
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != string(apierror.ServiceUnavailableException) || c.cap.lastErrorCode() != string(apierror.Unavailable) {
			t.Errorf("SDK error %v (code %q), want ServiceUnavailableException with error %q", err, c.cap.lastErrorCode(), apierror.Unavailable)
		}
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Errorf("requests reached upstream with tenantgate down: %+v", recs)
		}
	})
}

// expiredToken returns alice's token, expired an hour ago.
func expiredToken(t *testing.T, st *stack.Stack) string {
	t.Helper()
	tok, err := st.Token(stack.AliceUserID, -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forged returns a token for alice signed with a key tenantgate does not know.
func forged(t *testing.T, st *stack.Stack) string {
	t.Helper()
	tok := token(t, st, stack.AliceUserID)
	parts := strings.Split(tok, ".")
	// Keep header and claims, replace the signature.
	return parts[0] + "." + parts[1] + ".c2lnbmF0dXJlLWZyb20tYW5vdGhlci1rZXk"
}
