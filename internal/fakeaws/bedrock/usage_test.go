package bedrock_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	brtypes "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The fake returns usage in AWS's shapes; the official SDK parses each of
// them, and the five operations agree on the counts of the same prompt.
func TestUsageParsedBySDK(t *testing.T) {
	e := newEnv(t)
	c := e.client("us-east-1", "us-east-1", platformCreds, 1)
	ctx := context.Background()
	msgs := converseIn(haiku).Messages

	conv, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	u := conv.Usage
	if u == nil || *u.InputTokens < 1 || *u.OutputTokens < 1 || *u.TotalTokens != *u.InputTokens+*u.OutputTokens || u.CacheReadInputTokens != nil {
		t.Fatalf("converse usage %+v", u)
	}

	// ConverseStream's metadata event carries the same usage and metrics.
	cs, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	var meta *brtypes.ConverseStreamMetadataEvent
	for ev := range cs.GetStream().Events() {
		if m, ok := ev.(*brtypes.ConverseStreamOutputMemberMetadata); ok {
			meta = &m.Value
		}
	}
	if err := cs.GetStream().Err(); err != nil {
		t.Fatal(err)
	}
	cs.GetStream().Close()
	if meta == nil || meta.Usage == nil || meta.Metrics == nil || meta.Metrics.LatencyMs == nil ||
		*meta.Usage.InputTokens != *u.InputTokens || *meta.Usage.OutputTokens != *u.OutputTokens || *meta.Usage.TotalTokens != *u.TotalTokens {
		t.Fatalf("stream metadata %+v, converse usage %+v", meta, u)
	}

	// CountTokens counts the same prompt as Converse.
	ct, err := c.CountTokens(ctx, &bedrockruntime.CountTokensInput{ModelId: aws.String(haiku), Input: &brtypes.CountTokensInputMemberConverse{Value: brtypes.ConverseTokensRequest{Messages: msgs}}})
	if err != nil {
		t.Fatal(err)
	}
	if *ct.InputTokens != *u.InputTokens {
		t.Fatalf("count tokens %d, converse input %d", *ct.InputTokens, *u.InputTokens)
	}

	// InvokeModel: the token counts travel in response headers.
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi there"}]}`)
	inv, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), Body: body, ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := awsmiddleware.GetRawResponse(inv.ResultMetadata).(*smithyhttp.Response)
	if !ok {
		t.Fatal("no raw response")
	}
	hIn, err1 := strconv.Atoi(raw.Header.Get("X-Amzn-Bedrock-Input-Token-Count"))
	hOut, err2 := strconv.Atoi(raw.Header.Get("X-Amzn-Bedrock-Output-Token-Count"))
	var invBody struct {
		Usage struct {
			In  int `json:"input_tokens"`
			Out int `json:"output_tokens"`
		} `json:"usage"`
	}
	if err1 != nil || err2 != nil || json.Unmarshal(inv.Body, &invBody) != nil || hIn != invBody.Usage.In || hOut != invBody.Usage.Out || hIn < 1 || hOut < 1 {
		t.Fatalf("invoke headers in=%q out=%q body %s", raw.Header.Get("X-Amzn-Bedrock-Input-Token-Count"), raw.Header.Get("X-Amzn-Bedrock-Output-Token-Count"), inv.Body)
	}

	// InvokeModelWithResponseStream: the last chunk's JSON carries
	// amazon-bedrock-invocationMetrics with the same counts.
	st, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(haiku), Body: body, ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	var last []byte
	for ev := range st.GetStream().Events() {
		last = ev.(*brtypes.ResponseStreamMemberChunk).Value.Bytes
	}
	if err := st.GetStream().Err(); err != nil {
		t.Fatal(err)
	}
	st.GetStream().Close()
	var lastChunk struct {
		Metrics *struct {
			In    int  `json:"inputTokenCount"`
			Out   int  `json:"outputTokenCount"`
			Lat   *int `json:"invocationLatency"`
			First *int `json:"firstByteLatency"`
		} `json:"amazon-bedrock-invocationMetrics"`
	}
	if err := json.Unmarshal(last, &lastChunk); err != nil || lastChunk.Metrics == nil || lastChunk.Metrics.In != hIn || lastChunk.Metrics.Out != hOut ||
		lastChunk.Metrics.Lat == nil || lastChunk.Metrics.First == nil {
		t.Fatalf("last chunk %s (err %v), want in=%d out=%d", last, err, hIn, hOut)
	}
}

// A prompt with a cachePoint reports cache reads and writes, as AWS does,
// in Converse and in ConverseStream's metadata event.
func TestUsageCacheTokens(t *testing.T) {
	e := newEnv(t)
	c := e.client("us-east-1", "us-east-1", platformCreds, 1)
	ctx := context.Background()
	msgs := []brtypes.Message{{Role: brtypes.ConversationRoleUser, Content: []brtypes.ContentBlock{
		&brtypes.ContentBlockMemberText{Value: "A long shared system context that is worth caching across many calls."},
		&brtypes.ContentBlockMemberCachePoint{Value: brtypes.CachePointBlock{Type: brtypes.CachePointTypeDefault}},
		&brtypes.ContentBlockMemberText{Value: "Say hello"},
	}}}
	conv, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	u := conv.Usage
	if u.CacheReadInputTokens == nil || u.CacheWriteInputTokens == nil || *u.CacheReadInputTokens < 1 || *u.CacheWriteInputTokens < 1 ||
		*u.TotalTokens != *u.InputTokens+*u.OutputTokens+*u.CacheReadInputTokens+*u.CacheWriteInputTokens {
		t.Fatalf("usage %+v", u)
	}
	cs, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	var got *brtypes.TokenUsage
	for ev := range cs.GetStream().Events() {
		if m, ok := ev.(*brtypes.ConverseStreamOutputMemberMetadata); ok {
			got = m.Value.Usage
		}
	}
	cs.GetStream().Close()
	if got == nil || *got.CacheReadInputTokens != *u.CacheReadInputTokens || *got.CacheWriteInputTokens != *u.CacheWriteInputTokens || *got.InputTokens != *u.InputTokens {
		t.Fatalf("stream usage %+v, converse %+v", got, u)
	}
}

// CutNextStream aborts the next stream after the given number of events:
// the client gets only those events (the SDK's reader may end the channel
// without an error on a truncated body) and the fake records the abort.
func TestCutNextStream(t *testing.T) {
	e := newEnv(t)
	c := e.client("us-east-1", "us-east-1", platformCreds, 1)
	e.br.CutNextStream(2)
	cs, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: converseIn(haiku).Messages})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range cs.GetStream().Events() {
		n++
	}
	cs.GetStream().Close()
	if n != 2 {
		t.Fatalf("events %d (err %v); want 2", n, cs.GetStream().Err())
	}
	recs := e.br.Records()
	if len(recs) != 1 || recs[0].Status != 200 || recs[0].ErrorType != "aborted" {
		t.Fatalf("records %+v", recs)
	}
	// Only the next stream is cut.
	cs2, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: converseIn(haiku).Messages})
	if err != nil {
		t.Fatal(err)
	}
	for range cs2.GetStream().Events() {
	}
	if err := cs2.GetStream().Err(); err != nil {
		t.Fatal(err)
	}
}
