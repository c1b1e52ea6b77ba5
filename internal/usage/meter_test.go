package usage

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
)

func chunkEvent(t *testing.T, v any) eventstream.Message {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(b)})
	return event("chunk", string(p))
}

func exception(typ string) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("exception"))
	m.Headers.Set(":exception-type", eventstream.StringValue(typ))
	m.Payload = []byte(`{"message":"x"}`)
	return m
}

func TestMeter(t *testing.T) {
	invokeStream := encode(t,
		chunkEvent(t, map[string]any{"type": "message_start", "message": map[string]any{"usage": map[string]any{"input_tokens": 11, "output_tokens": 1}}}),
		chunkEvent(t, map[string]any{"type": "content_block_delta", "delta": map[string]any{"text": "hi"}}),
		chunkEvent(t, map[string]any{"type": "message_delta", "usage": map[string]any{"output_tokens": 6}}),
		chunkEvent(t, map[string]any{"type": "message_stop", "amazon-bedrock-invocationMetrics": map[string]any{"inputTokenCount": 12, "outputTokenCount": 7, "invocationLatency": 40, "firstByteLatency": 9}}),
	)
	converseStream := encode(t, event("messageStart", `{"role":"assistant"}`), event("contentBlockDelta", `{"delta":{"text":"hi"}}`),
		event("metadata", `{"usage":{"inputTokens":5,"outputTokens":8,"totalTokens":20,"cacheReadInputTokens":3,"cacheWriteInputTokens":4},"metrics":{"latencyMs":12}}`))
	noHeaders := func(string) string { return "" }
	cases := []struct {
		name    string
		op      bedrockpath.Operation
		status  int
		headers map[string]string
		body    []byte
		cutAt   int // feed only the first cutAt bytes, without Done
		want    Tokens
		final   bool
		errType string
	}{
		{name: "converse", op: bedrockpath.Converse, status: 200, body: []byte(`{"output":{"message":{"content":[{"text":"x"}]}},"usage":{"inputTokens":10,"outputTokens":4,"totalTokens":19,"cacheReadInputTokens":2,"cacheWriteInputTokens":3}}`),
			want: Tokens{10, 4, 2, 3}, final: true},
		{name: "converse without usage", op: bedrockpath.Converse, status: 200, body: []byte(`{"output":{}}`)},
		{name: "converse malformed", op: bedrockpath.Converse, status: 200, body: []byte(`{"usage":{"inputTokens":`)},
		{name: "count tokens", op: bedrockpath.CountTokens, status: 200, body: []byte(`{"inputTokens":17}`), want: Tokens{Input: 17}, final: true},
		{name: "invoke headers", op: bedrockpath.InvokeModel, status: 200, headers: map[string]string{"x-amzn-bedrock-input-token-count": "21", "x-amzn-bedrock-output-token-count": "9"},
			body: []byte(`{"usage":{"input_tokens":1}}`), want: Tokens{Input: 21, Output: 9}, final: true},
		{name: "invoke bad header", op: bedrockpath.InvokeModel, status: 200, headers: map[string]string{"x-amzn-bedrock-input-token-count": "-1", "x-amzn-bedrock-output-token-count": "9"}},
		{name: "error status", op: bedrockpath.Converse, status: 429, headers: map[string]string{"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/"},
			body: []byte(`{"usage":{"inputTokens":10}}`), errType: "ThrottlingException"},
		{name: "converse stream", op: bedrockpath.ConverseStream, status: 200, body: converseStream, want: Tokens{5, 8, 3, 4}, final: true},
		{name: "converse stream cut", op: bedrockpath.ConverseStream, status: 200, body: converseStream, cutAt: len(converseStream) - 10},
		{name: "invoke stream", op: bedrockpath.InvokeModelWithResponseStream, status: 200, body: invokeStream, want: Tokens{Input: 12, Output: 7}, final: true},
		{name: "invoke stream cut", op: bedrockpath.InvokeModelWithResponseStream, status: 200, body: invokeStream, cutAt: len(invokeStream) - 10, want: Tokens{Input: 11, Output: 6}},
		{name: "stream exception", op: bedrockpath.ConverseStream, status: 200, body: encode(t, event("messageStart", `{}`), exception("modelStreamErrorException")), errType: "modelStreamErrorException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMeter(tc.op)
			get := noHeaders
			if tc.headers != nil {
				get = func(k string) string { return tc.headers[k] }
			}
			m.Headers(tc.status, get)
			body := tc.body
			if tc.cutAt > 0 {
				body = body[:tc.cutAt]
			}
			// Chunks of 7 bytes: usage must survive any split.
			for i := 0; i < len(body); i += 7 {
				m.Body(body[i:min(i+7, len(body))])
			}
			if tc.cutAt == 0 {
				m.Done()
			}
			got, final, errType := m.Result()
			if got != tc.want || final != tc.final || errType != tc.errType {
				t.Fatalf("got %+v final=%v err=%q, want %+v final=%v err=%q", got, final, errType, tc.want, tc.final, tc.errType)
			}
		})
	}
}

func TestMeterBoundsJSON(t *testing.T) {
	m := NewMeter(bedrockpath.Converse)
	m.Headers(200, func(string) string { return "" })
	m.Body([]byte(`{"output":"` + strings.Repeat("x", MaxJSONBody) + `",`))
	m.Body([]byte(`"usage":{"inputTokens":1,"outputTokens":1}}`))
	m.Done()
	if got, final, _ := m.Result(); final || got != (Tokens{}) || m.json != nil {
		t.Fatalf("oversized body: %+v final=%v kept %d bytes", got, final, len(m.json))
	}
}
