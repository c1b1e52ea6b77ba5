package awserr

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{
			"assumed role access denied",
			`{"message":"User: arn:aws:sts::111122223333:assumed-role/TenantRole/tenantgate-acct is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-opus-20240229-v1:0 because no identity-based policy allows the bedrock:InvokeModel action"}`,
			`{"message":"User: [redacted] is not authorized to perform: bedrock:InvokeModel on resource: [redacted] because no identity-based policy allows the bedrock:InvokeModel action"}`,
		},
		{
			"iam user in another partition",
			`{"message":"User: arn:aws-us-gov:iam::999988887777:user/platform is not authorized"}`,
			`{"message":"User: [redacted] is not authorized"}`,
		},
		{
			"bare account id, key order and spacing kept",
			`{ "Message" : "account 111122223333 lacks access", "__type":"AccessDeniedException" }`,
			`{ "Message" : "account [redacted] lacks access", "__type":"AccessDeniedException" }`,
		},
		{
			"numbers that are not account ids stay",
			`{"message":"Input is too long: 200000 tokens, request 1700000000000","limit":4096}`,
			`{"message":"Input is too long: 200000 tokens, request 1700000000000","limit":4096}`,
		},
		{
			"account id as a JSON number",
			`{"account":111122223333,"n":[1,2.5e3]}`,
			`{"account":"[redacted]","n":[1,2.5e3]}`,
		},
		{
			"escaped quote after an arn keeps the document valid",
			`{"message":"role \"arn:aws:iam::111122223333:role/x\" denied"}`,
			`{"message":"role \"[redacted]\" denied"}`,
		},
		{
			"unicode escapes are decoded before matching",
			`{"message":"\u0061rn:aws:iam::111122223333:role/x denied <ok>"}`,
			`{"message":"[redacted] denied <ok>"}`,
		},
		{
			"untouched strings keep their original escapes",
			`{"message":"caf\u00e9 \/ ok"}`,
			`{"message":"caf\u00e9 \/ ok"}`,
		},
		{
			"not json",
			"<Error><Message>User: arn:aws:sts::111122223333:assumed-role/R/s denied</Message></Error>",
			"<Error><Message>User: [redacted] denied</Message></Error>",
		},
		{
			"truncated json",
			`{"message":"User: arn:aws:iam::111122223333:user/u is`,
			`{"message":"User: [redacted] is`,
		},
		{"empty", ``, ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Scrub([]byte(tc.in)))
			if got != tc.want {
				t.Fatalf("Scrub(%s)\n got %s\nwant %s", tc.in, got, tc.want)
			}
			if json.Valid([]byte(tc.in)) && !json.Valid([]byte(got)) {
				t.Fatalf("valid JSON became invalid: %s", got)
			}
		})
	}
}

func TestScrubText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"arn:aws:iam::111122223333:role/A", Placeholder},
		{"arn:aws-cn:bedrock:cn-north-1:111122223333:inference-profile/x,next", Placeholder},
		{"id 111122223333.", "id " + Placeholder + "."},
		{"1111222233334", "1111222233334"},
		{"11112222333", "11112222333"},
		{"a111122223333b", "a" + Placeholder + "b"},
		{"arnold aws:iam", "arnold aws:iam"},
	}
	for _, tc := range cases {
		if got := ScrubText(tc.in); got != tc.want {
			t.Errorf("ScrubText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

var (
	leakARN    = regexp.MustCompile(`arn:aws[-a-z]*:`)
	digitRuns  = regexp.MustCompile(`[0-9]+`)
	hasAccount = func(s string) bool {
		for _, r := range digitRuns.FindAllString(s, -1) {
			if len(r) == 12 {
				return true
			}
		}
		return false
	}
)

// texts returns every string (keys and values) and number of a decoded
// JSON document.
func texts(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case json.Number:
		*out = append(*out, string(x))
	case []any:
		for _, e := range x {
			texts(e, out)
		}
	case map[string]any:
		for k, e := range x {
			*out = append(*out, k)
			texts(e, out)
		}
	}
}

// FuzzScrub: Scrub never panics, keeps valid JSON valid, and what a client reads from the result (decoded strings,
// numbers, or the raw text) holds no ARN and no 12-digit run; a body without
// either is returned unchanged.
func FuzzScrub(f *testing.F) {
	f.Add([]byte(`{"message":"User: arn:aws:sts::111122223333:assumed-role/TenantRole/s is not authorized"}`))
	f.Add([]byte(`{"a":[111122223333,"\u0031\u0031\u0031\u0031222233334"],"b":null}`))
	f.Add([]byte(`{"message":"x \"arn:aws:iam::1:role/\\\"q\" y"}`))
	f.Add([]byte("plain arn:aws:s3:::bucket 999988887777"))
	f.Add([]byte(`{"n":1e111122223333}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := Scrub(in)
		valid := json.Valid(in)
		if valid && !json.Valid(out) {
			t.Fatalf("valid JSON became invalid: %q -> %q", in, out)
		}
		var seen []string
		if valid {
			dec := json.NewDecoder(strings.NewReader(string(out)))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("decode %q: %v", out, err)
			}
			texts(v, &seen)
		} else {
			seen = []string{string(out)}
		}
		for _, s := range seen {
			if leakARN.MatchString(s) || hasAccount(s) {
				t.Fatalf("leak in %q (from %q)", s, in)
			}
		}
		clean := !leakARN.Match(in) && !hasAccount(string(in))
		if clean && !valid && string(out) != string(in) {
			t.Fatalf("clean text changed: %q -> %q", in, out)
		}
	})
}
