package bedrock_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	brtypes "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	"github.com/tenantgate/tenantgate/internal/fakeaws/sts"
)

const (
	platformKey    = "AKIAPLATFORMEXAMPLE01"
	platformSecret = "platformSecretKeyExample0000000000000000"
	platformARN    = "arn:aws:iam::999988887777:user/tenantgate-platform"
	roleARN        = "arn:aws:iam::111122223333:role/AcmeBedrockAccess"
	externalID     = "acme-external-id-7f3c"
	haiku          = "anthropic.claude-3-haiku-20240307-v1:0"
	profileARN     = "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0"
	streamDelay    = 80 * time.Millisecond
)

type env struct {
	br     *bedrock.Server
	sts    *sts.Server
	creds  *credstore.Store
	brAddr string
	stsURL string
	brHTTP *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store := credstore.New(nil)
	store.AddStatic(platformKey, platformSecret, platformARN)
	br, err := bedrock.New(bedrock.Config{Credentials: store, Regions: []string{"us-east-1", "eu-west-1"}, StreamDelay: streamDelay})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sts.New(sts.Config{Credentials: store, Roles: []sts.Role{{ARN: roleARN, ExternalID: externalID, TagSession: true, SetSourceIdentity: true}}})
	if err != nil {
		t.Fatal(err)
	}
	brSrv := httptest.NewServer(br)
	stsSrv := httptest.NewServer(st)
	t.Cleanup(brSrv.Close)
	t.Cleanup(stsSrv.Close)
	addr := brSrv.Listener.Addr().String()
	// Every bedrock-runtime.<region>.amazonaws.com host dials the fake.
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &env{br: br, sts: st, creds: store, brAddr: addr, stsURL: stsSrv.URL, brHTTP: &http.Client{Transport: bufferedBody{tr}}}
}

// bufferedBody hands net/http a request body already read into memory. Under
// load, the SDK's own request body for the streaming operations can report
// EOF while net/http is still writing it (httptrace WroteRequest: EOF); net/http
// then closes the connection and the response stream fails after its first
// event with "use of closed network connection". The signature and the bytes
// the fake verifies are unchanged.
type bufferedBody struct{ rt http.RoundTripper }

func (b bufferedBody) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("buffer request body: %w", err)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return b.rt.RoundTrip(req)
}

// client signs for signRegion and sends to the host of hostRegion.
func (e *env) client(signRegion, hostRegion string, cr aws.Credentials, retries int) *bedrockruntime.Client {
	return bedrockruntime.NewFromConfig(aws.Config{
		Region:           signRegion,
		Credentials:      credentials.StaticCredentialsProvider{Value: cr},
		HTTPClient:       e.brHTTP,
		RetryMaxAttempts: retries,
	}, func(o *bedrockruntime.Options) {
		o.BaseEndpoint = aws.String("http://bedrock-runtime." + hostRegion + ".amazonaws.com")
	})
}

func (e *env) assumeRole(t *testing.T) aws.Credentials {
	t.Helper()
	c := awssts.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider(platformKey, platformSecret, ""), BaseEndpoint: aws.String(e.stsURL)})
	out, err := c.AssumeRole(context.Background(), &awssts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("tenantgate-acme"), ExternalId: aws.String(externalID), DurationSeconds: aws.Int32(900)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.Credentials{AccessKeyID: *out.Credentials.AccessKeyId, SecretAccessKey: *out.Credentials.SecretAccessKey, SessionToken: *out.Credentials.SessionToken}
}

var platformCreds = aws.Credentials{AccessKeyID: platformKey, SecretAccessKey: platformSecret}

func converseIn(model string) *bedrockruntime.ConverseInput {
	return &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: []brtypes.Message{{Role: brtypes.ConversationRoleUser, Content: []brtypes.ContentBlock{&brtypes.ContentBlockMemberText{Value: "Say hello"}}}}}
}

func converseText(t *testing.T, out *bedrockruntime.ConverseOutput) string {
	t.Helper()
	msg, ok := out.Output.(*brtypes.ConverseOutputMemberMessage)
	if !ok || len(msg.Value.Content) != 1 {
		t.Fatalf("output %#v", out.Output)
	}
	txt, ok := msg.Value.Content[0].(*brtypes.ContentBlockMemberText)
	if !ok {
		t.Fatalf("content %#v", msg.Value.Content[0])
	}
	return txt.Value
}

func TestConverseStaticAndTemporaryCredentials(t *testing.T) {
	e := newEnv(t)
	tmp := e.assumeRole(t)
	cases := []struct {
		name, region, model string
		creds               aws.Credentials
		wantPrincipal       string
		wantRawPath         string
		wantToken           bool
	}{
		{"static us-east-1", "us-east-1", haiku, platformCreds, platformARN, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", false},
		{"assumed role eu-west-1", "eu-west-1", haiku, tmp, "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/tenantgate-acme", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", true},
		{"inference profile arn", "eu-west-1", profileARN, tmp, "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/tenantgate-acme",
			"/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A111122223333%3Ainference-profile%2Feu.anthropic.claude-3-haiku-20240307-v1%3A0/converse", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.br.ResetRecords()
			out, err := e.client(c.region, c.region, c.creds, 1).Converse(context.Background(), converseIn(c.model))
			if err != nil {
				t.Fatal(err)
			}
			want := "Hello from fake Bedrock " + c.region + ", signed by " + c.wantPrincipal + " for model " + c.model
			if got := converseText(t, out); got != want {
				t.Fatalf("text %q, want %q", got, want)
			}
			if out.StopReason != brtypes.StopReasonEndTurn || out.Usage == nil || *out.Usage.TotalTokens != *out.Usage.InputTokens+*out.Usage.OutputTokens || *out.Usage.InputTokens < 1 || out.Metrics == nil {
				t.Fatalf("usage/stop/metrics %+v %+v %+v", out.StopReason, out.Usage, out.Metrics)
			}
			recs := e.br.Records()
			if len(recs) != 1 {
				t.Fatalf("records %d", len(recs))
			}
			r := recs[0]
			if r.Region != c.region || r.Operation != "Converse" || r.ModelID != c.model || r.RawPath != c.wantRawPath || r.PrincipalARN != c.wantPrincipal ||
				r.AccessKeyID != c.creds.AccessKeyID || r.SessionTokenPresent != c.wantToken || r.Status != 200 || r.BearerAuthorization || r.APIKeyHeader || r.AccountIDHeader || len(r.NonAWSHeaders) != 0 {
				t.Fatalf("record %+v", r)
			}
			if !strings.Contains(strings.Join(r.SignedHeaders, ";"), "host") {
				t.Fatalf("signed headers %v", r.SignedHeaders)
			}
		})
	}
}

func TestConverseStreamArrivesSpacedOut(t *testing.T) {
	e := newEnv(t)
	out, err := e.client("us-east-1", "us-east-1", platformCreds, 1).ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
		ModelId: aws.String(haiku), Messages: converseIn(haiku).Messages,
	})
	if err != nil {
		t.Fatal(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	var kinds []string
	var times []time.Time
	var text strings.Builder
	for ev := range stream.Events() {
		times = append(times, time.Now())
		switch v := ev.(type) {
		case *brtypes.ConverseStreamOutputMemberMessageStart:
			kinds = append(kinds, "messageStart")
		case *brtypes.ConverseStreamOutputMemberContentBlockDelta:
			kinds = append(kinds, "delta")
			text.WriteString(v.Value.Delta.(*brtypes.ContentBlockDeltaMemberText).Value)
		case *brtypes.ConverseStreamOutputMemberContentBlockStop:
			kinds = append(kinds, "contentBlockStop")
		case *brtypes.ConverseStreamOutputMemberMessageStop:
			kinds = append(kinds, "messageStop")
			if v.Value.StopReason != brtypes.StopReasonEndTurn {
				t.Fatalf("stop reason %v", v.Value.StopReason)
			}
		case *brtypes.ConverseStreamOutputMemberMetadata:
			kinds = append(kinds, "metadata")
			if v.Value.Usage == nil || *v.Value.Usage.OutputTokens < 1 {
				t.Fatalf("metadata %+v", v.Value)
			}
		default:
			t.Fatalf("unexpected event %T", ev)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	deltas := strings.Count(strings.Join(kinds, ","), "delta")
	if kinds[0] != "messageStart" || deltas < 3 || strings.Join(kinds[len(kinds)-3:], ",") != "contentBlockStop,messageStop,metadata" {
		t.Fatalf("event sequence %v", kinds)
	}
	if want := bedrock.Answer("us-east-1", platformARN, haiku); text.String() != want {
		t.Fatalf("text %q, want %q", text.String(), want)
	}
	// Events must arrive one by one: every gap is close to the stream delay,
	// none arrive bunched together at the end.
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < streamDelay/2 {
			t.Fatalf("event %d (%s) arrived %v after the previous one; want ~%v", i, kinds[i], gap, streamDelay)
		}
	}
}

func TestInvokeModelAndStream(t *testing.T) {
	e := newEnv(t)
	c := e.client("eu-west-1", "eu-west-1", platformCreds, 1)
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)
	out, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), Body: body, ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Type    string `json:"type"`
		Model   string `json:"model"`
		Content []struct{ Type, Text string }
		Usage   struct {
			InputTokens int `json:"input_tokens"`
		}
		Echo map[string]any `json:"echo"`
	}
	if err := json.Unmarshal(out.Body, &msg); err != nil {
		t.Fatal(err)
	}
	want := bedrock.Answer("eu-west-1", platformARN, haiku)
	if msg.Type != "message" || msg.Model != haiku || len(msg.Content) != 1 || msg.Content[0].Text != want || msg.Usage.InputTokens < 1 || msg.Echo["max_tokens"] != float64(64) {
		t.Fatalf("invoke response %s", out.Body)
	}

	if _, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), Body: []byte("not json")}); !isType[*brtypes.ValidationException](err) {
		t.Fatalf("malformed body: %v", err)
	}

	st, err := c.InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(haiku), Body: body, ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	s := st.GetStream()
	defer s.Close()
	var text strings.Builder
	var types []string
	for ev := range s.Events() {
		ch, ok := ev.(*brtypes.ResponseStreamMemberChunk)
		if !ok {
			t.Fatalf("event %T", ev)
		}
		var m map[string]any
		if err := json.Unmarshal(ch.Value.Bytes, &m); err != nil {
			t.Fatalf("chunk bytes %q: %v", ch.Value.Bytes, err)
		}
		types = append(types, m["type"].(string))
		if m["type"] == "content_block_delta" {
			text.WriteString(m["delta"].(map[string]any)["text"].(string))
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != want || types[0] != "message_start" || types[len(types)-1] != "message_stop" {
		t.Fatalf("stream text %q types %v", text.String(), types)
	}
}

func TestCountTokensGuardrailAsync(t *testing.T) {
	e := newEnv(t)
	c := e.client("us-east-1", "us-east-1", platformCreds, 1)
	ct, err := c.CountTokens(context.Background(), &bedrockruntime.CountTokensInput{ModelId: aws.String(haiku), Input: &brtypes.CountTokensInputMemberConverse{Value: brtypes.ConverseTokensRequest{Messages: converseIn(haiku).Messages}}})
	if err != nil {
		t.Fatal(err)
	}
	ct2, err := c.CountTokens(context.Background(), &bedrockruntime.CountTokensInput{ModelId: aws.String(haiku), Input: &brtypes.CountTokensInputMemberConverse{Value: brtypes.ConverseTokensRequest{Messages: []brtypes.Message{{Role: brtypes.ConversationRoleUser, Content: []brtypes.ContentBlock{&brtypes.ContentBlockMemberText{Value: strings.Repeat("word ", 100)}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if *ct.InputTokens < 1 || *ct2.InputTokens <= *ct.InputTokens {
		t.Fatalf("token counts %d, %d", *ct.InputTokens, *ct2.InputTokens)
	}
	g, err := c.ApplyGuardrail(context.Background(), &bedrockruntime.ApplyGuardrailInput{GuardrailIdentifier: aws.String("gr-123"), GuardrailVersion: aws.String("1"), Source: brtypes.GuardrailContentSourceInput,
		Content: []brtypes.GuardrailContentBlock{&brtypes.GuardrailContentBlockMemberText{Value: brtypes.GuardrailTextBlock{Text: aws.String("hello")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Action != brtypes.GuardrailActionNone || g.Usage == nil || !strings.Contains(aws.ToString(g.ActionReason), platformARN) {
		t.Fatalf("guardrail %+v", g)
	}
	start, err := c.StartAsyncInvoke(context.Background(), &bedrockruntime.StartAsyncInvokeInput{ModelId: aws.String("amazon.nova-reel-v1:0"), ModelInput: document.NewLazyDocument(map[string]any{"taskType": "TEXT_VIDEO"}),
		OutputDataConfig: &brtypes.AsyncInvokeOutputDataConfigMemberS3OutputDataConfig{Value: brtypes.AsyncInvokeS3OutputDataConfig{S3Uri: aws.String("s3://bucket/out")}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*start.InvocationArn, "arn:aws:bedrock:us-east-1:999988887777:async-invoke/") {
		t.Fatalf("arn %q", *start.InvocationArn)
	}
	got, err := c.GetAsyncInvoke(context.Background(), &bedrockruntime.GetAsyncInvokeInput{InvocationArn: start.InvocationArn})
	if err != nil {
		t.Fatal(err)
	}
	if *got.InvocationArn != *start.InvocationArn || got.Status != brtypes.AsyncInvokeStatusCompleted {
		t.Fatalf("get %+v", got)
	}
	list, err := c.ListAsyncInvokes(context.Background(), &bedrockruntime.ListAsyncInvokesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.AsyncInvokeSummaries) != 1 {
		t.Fatalf("list %+v", list)
	}
	_, err = c.GetAsyncInvoke(context.Background(), &bedrockruntime.GetAsyncInvokeInput{InvocationArn: aws.String("arn:aws:bedrock:us-east-1:1:async-invoke/nope")})
	if !isType[*brtypes.ResourceNotFoundException](err) {
		t.Fatalf("unknown async arn: %v", err)
	}
	recs := e.br.Records()
	if recs[len(recs)-1].Operation != "GetAsyncInvoke" || recs[len(recs)-1].Status != 404 || recs[len(recs)-1].ErrorType != "ResourceNotFoundException" {
		t.Fatalf("last record %+v", recs[len(recs)-1])
	}
}

func isType[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestSDKErrors(t *testing.T) {
	e := newEnv(t)
	tmp := e.assumeRole(t)
	expiring := e.assumeRole(t)
	if !e.creds.Expire(expiring.AccessKeyID) {
		t.Fatal("expire failed")
	}
	cases := []struct {
		name   string
		client *bedrockruntime.Client
		in     *bedrockruntime.ConverseInput
		code   string
	}{
		{"wrong region in signature", e.client("eu-west-1", "us-east-1", platformCreds, 1), converseIn(haiku), "InvalidSignatureException"},
		{"unknown key", e.client("us-east-1", "us-east-1", aws.Credentials{AccessKeyID: "AKIAUNKNOWN000000000", SecretAccessKey: "x"}, 1), converseIn(haiku), "UnrecognizedClientException"},
		{"wrong secret", e.client("us-east-1", "us-east-1", aws.Credentials{AccessKeyID: platformKey, SecretAccessKey: "wrong"}, 1), converseIn(haiku), "InvalidSignatureException"},
		{"missing session token", e.client("eu-west-1", "eu-west-1", aws.Credentials{AccessKeyID: tmp.AccessKeyID, SecretAccessKey: tmp.SecretAccessKey}, 1), converseIn(haiku), "UnrecognizedClientException"},
		{"wrong session token", e.client("eu-west-1", "eu-west-1", aws.Credentials{AccessKeyID: tmp.AccessKeyID, SecretAccessKey: tmp.SecretAccessKey, SessionToken: expiring.SessionToken}, 1), converseIn(haiku), "UnrecognizedClientException"},
		{"expired temporary credentials", e.client("eu-west-1", "eu-west-1", expiring, 1), converseIn(haiku), "ExpiredTokenException"},
		{"region not served", e.client("ap-south-1", "ap-south-1", platformCreds, 1), converseIn(haiku), "ValidationException"},
		{"no messages", e.client("us-east-1", "us-east-1", platformCreds, 1), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku)}, "ValidationException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.client.Converse(context.Background(), c.in)
			if got := apiCode(err); got != c.code {
				t.Fatalf("code %q, want %q (%v)", got, c.code, err)
			}
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() >= 500 {
				t.Fatalf("status: %v", err)
			}
			if strings.Contains(err.Error(), platformSecret) || strings.Contains(err.Error(), tmp.SessionToken) {
				t.Fatal("secret leaked")
			}
		})
	}
	if _, err := e.client("us-east-1", "us-east-1", platformCreds, 1).Converse(context.Background(), converseIn("")); err == nil {
		t.Fatal("empty model accepted")
	}
}

func TestFaultsAndThrottling(t *testing.T) {
	e := newEnv(t)
	e.br.Faults().FailNext(2)
	// The SDK's standard retryer (3 attempts) rides over two 503s.
	if _, err := e.client("us-east-1", "us-east-1", platformCreds, 3).Converse(context.Background(), converseIn(haiku)); err != nil {
		t.Fatal(err)
	}
	recs := e.br.Records()
	if len(recs) != 3 || recs[0].Status != 503 || recs[0].ErrorType != "ServiceUnavailableException" || recs[1].Status != 503 || recs[2].Status != 200 {
		t.Fatalf("records %+v", recs)
	}
	e.br.Faults().FailNext(1)
	_, err := e.client("us-east-1", "us-east-1", platformCreds, 1).Converse(context.Background(), converseIn(haiku))
	if !isType[*brtypes.ServiceUnavailableException](err) {
		t.Fatalf("503: %v", err)
	}
	e.br.ThrottleNext(1)
	_, err = e.client("us-east-1", "us-east-1", platformCreds, 1).Converse(context.Background(), converseIn(haiku))
	if !isType[*brtypes.ThrottlingException](err) {
		t.Fatalf("throttle: %v", err)
	}
}

// rawSigned signs a request with the SDK signer, lets mutate change it,
// sends it to the fake and returns status, error type and body.
func (e *env) rawSigned(t *testing.T, host, path string, body []byte, service, region string, signTime time.Time, mutate func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), platformCreds, req, hex.EncodeToString(sum[:]), service, region, signTime); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(req)
	}
	resp, err := e.brHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]string
	if resp.StatusCode != 200 && (json.Unmarshal(b, &m) != nil || m["message"] == "") {
		t.Fatalf("error body %q", b)
	}
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType")
}

func TestRawRejections(t *testing.T) {
	e := newEnv(t)
	host := "bedrock-runtime.us-east-1.amazonaws.com"
	path := "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	now := time.Now()
	cases := []struct {
		name     string
		service  string
		signTime time.Time
		mutate   func(*http.Request)
		status   int
		errType  string
	}{
		{"valid", "bedrock", now, nil, 200, ""},
		{"wrong service", "sts", now, nil, 403, "InvalidSignatureException"},
		{"stale date", "bedrock", now.Add(-6 * time.Minute), nil, 403, "InvalidSignatureException"},
		{"tampered body", "bedrock", now, func(r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("hi"), []byte("yo"), 1)))
		}, 403, "InvalidSignatureException"},
		{"decoded path", "bedrock", now, func(r *http.Request) {
			r.URL.RawPath = ""
			r.URL.Path = "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
		}, 403, "InvalidSignatureException"},
		{"unsigned payload", "bedrock", now, func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD") }, 403, "InvalidSignatureException"},
		{"unsigned host", "bedrock", now, func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=content-length;content-type;host;x-amz-date", "SignedHeaders=content-length;content-type;x-amz-date", 1))
		}, 403, "InvalidSignatureException"},
		{"bearer token", "bedrock", now, func(r *http.Request) { r.Header.Set("Authorization", "Bearer eyJhbGciOi.x.y") }, 403, "IncompleteSignatureException"},
		{"no authorization", "bedrock", now, func(r *http.Request) { r.Header.Del("Authorization") }, 403, "MissingAuthenticationTokenException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.br.ResetRecords()
			status, et := e.rawSigned(t, host, path, body, c.service, "us-east-1", c.signTime, c.mutate)
			if status != c.status || et != c.errType {
				t.Fatalf("got %d %q, want %d %q", status, et, c.status, c.errType)
			}
			recs := e.br.Records()
			if len(recs) != 1 || recs[0].ModelID != haiku {
				t.Fatalf("records %+v", recs)
			}
			if c.name == "bearer token" && !recs[0].BearerAuthorization {
				t.Fatal("bearer not recorded")
			}
		})
	}
	// Non-AWS headers that reach the endpoint are recorded.
	e.br.ResetRecords()
	status, _ := e.rawSigned(t, host, path, body, "bedrock", "us-east-1", now, func(r *http.Request) {
		r.Header.Set("X-Api-Key", "pk_x:sk_y")
		r.Header.Set("X-Account-Id", "acct")
		r.Header.Set("X-Custom", "1")
	})
	r := e.br.Records()[0]
	if status != 200 || !r.APIKeyHeader || !r.AccountIDHeader || strings.Join(r.NonAWSHeaders, ",") != "x-account-id,x-api-key,x-custom" {
		t.Fatalf("status %d record %+v", status, r)
	}
}

func TestRecordsHandler(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client("us-east-1", "us-east-1", platformCreds, 1).Converse(context.Background(), converseIn(haiku)); err != nil {
		t.Fatal(err)
	}
	h := e.br.RecordsHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_fake/records", nil))
	var got []bedrock.Record
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 1 || got[0].ModelID != haiku {
		t.Fatalf("GET records %s (%v)", rec.Body, err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/_fake/records", nil))
	if rec.Code != http.StatusNoContent || len(e.br.Records()) != 0 {
		t.Fatalf("DELETE: %d, %d left", rec.Code, len(e.br.Records()))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_fake/records", nil))
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("empty records %q", rec.Body)
	}
}
