package bedrockpath

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestAsyncInvokeModelID(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"model id", `{"modelId":"amazon.nova-reel-v1:0","modelInput":{"taskType":"TEXT_VIDEO"}}`, "amazon.nova-reel-v1:0"},
		{"arn", `{"modelInput":{},"modelId":"arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-reel-v1:0"}`, "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-reel-v1:0"},
		{"escaped key", `{"model\u0049d":"a.b"}`, "a.b"},
		{"nested modelId ignored", `{"modelInput":{"modelId":"other"},"modelId":"a.b"}`, "a.b"},
		{"whitespace", " \n{ \"modelId\" : \"a.b\" }\n", "a.b"},
		{"not json", `modelId=a.b`, ""},
		{"trailing data", `{"modelId":"a.b"}{"modelId":"c"}`, ""},
		{"array", `[{"modelId":"a.b"}]`, ""},
		{"missing", `{"modelInput":{}}`, ""},
		{"empty", `{"modelId":""}`, ""},
		{"null", `{"modelId":null}`, ""},
		{"number", `{"modelId":7}`, ""},
		{"duplicate", `{"modelId":"a.b","modelId":"c.d"}`, ""},
		{"case variant", `{"modelId":"a.b","MODELID":"c.d"}`, ""},
		{"case variant alone", `{"modelid":"c.d"}`, ""},
		{"control character", `{"modelId":"a\u0000b"}`, ""},
		{"invalid utf-8", "{\"modelId\":\"a\xffb\"}", ""},
		{"too long", `{"modelId":"` + strings.Repeat("a", MaxModelIDLen+1) + `"}`, ""},
		{"empty body", ``, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AsyncInvokeModelID([]byte(tc.body))
			if tc.want == "" {
				if !errors.Is(err, ErrBadAsyncBody) {
					t.Fatalf("got %q, %v; want ErrBadAsyncBody", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestAsync(t *testing.T) {
	for op, want := range map[Operation]bool{StartAsyncInvoke: true, ListAsyncInvokes: true, GetAsyncInvoke: true, Converse: false, InvokeModel: false, ApplyGuardrail: false} {
		if op.Async() != want {
			t.Errorf("%s.Async() = %v", op, !want)
		}
	}
}

// FuzzAsyncInvokeModelID: untrusted bodies never panic, and an accepted
// model id is exactly what a case-sensitive JSON reader sees as the
// top-level "modelId".
func FuzzAsyncInvokeModelID(f *testing.F) {
	for _, s := range []string{
		`{"modelId":"amazon.nova-reel-v1:0","modelInput":{"taskType":"TEXT_VIDEO"}}`,
		`{"modelId":"a","modelId":"b"}`, `{"MODELID":"a"}`, `{"model\u0049d":"a"}`,
		`{"modelInput":{"modelId":"x"}}`, `{"modelId":null}`, `[]`, ``, `{"modelId":"a\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := AsyncInvokeModelID(body)
		if err != nil {
			if !errors.Is(err, ErrBadAsyncBody) {
				t.Fatalf("error %v does not wrap ErrBadAsyncBody", err)
			}
			return
		}
		if got == "" || len(got) > MaxModelIDLen {
			t.Fatalf("accepted model id %q", got)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a body that is not a JSON object: %v", err)
		}
		var v string
		if err := json.Unmarshal(m["modelId"], &v); err != nil || v != got {
			t.Fatalf("model id %q, but the object's modelId is %s", got, m["modelId"])
		}
		for k := range m {
			if k != "modelId" && strings.EqualFold(k, "modelId") {
				t.Fatalf("accepted with ambiguous key %q", k)
			}
		}
	})
}
