package usage

import (
	"context"
	"io"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tenantgate/tenantgate/internal/identity"
)

type recordsTo []Record

func (r *recordsTo) Record(x Record) { *r = append(*r, x) }

func hdrs(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func observed(t *testing.T, msgs ...*extprocv3.ProcessingRequest) []Record {
	t.Helper()
	var got recordsTo
	clock := time.Unix(1000, 0)
	o := &Observer{Sink: &got, Now: func() time.Time { clock = clock.Add(10 * time.Millisecond); return clock }}
	i := 1
	if err := o.Observe(context.Background(), msgs[0], func() (*extprocv3.ProcessingRequest, error) {
		if i >= len(msgs) {
			return nil, io.EOF
		}
		i++
		return msgs[i-1], nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestObserver(t *testing.T) {
	id := identity.Identity{AccountID: "acct", Tier: "pro", UserID: "u1", Principal: identity.PrincipalUser, Credential: "api_key", APIKeyID: "key-1"}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{identity.MetadataNamespace: id.Struct()}}
	for k, v := range Metadata("called-model", "ignored", KindTenant, "eu-west-1").GetFields() {
		md.FilterMetadata[k] = v.GetStructValue()
	}
	reqHeaders := func(withID bool) *extprocv3.ProcessingRequest {
		h := []string{":method", "POST", ":path", "/model/eu.m%3A0/converse", ":authority", "bedrock-runtime.eu-west-1.amazonaws.com"}
		if withID {
			h = append(h, "x-request-id", "rid-1")
		}
		return &extprocv3.ProcessingRequest{ObservabilityMode: true, MetadataContext: md,
			Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hdrs(h...), EndOfStream: false}}}
	}
	respHeaders := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", "200")}}}
	body := func(b string, eos bool) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
	}

	got := observed(t, reqHeaders(true), respHeaders, body(`{"usage":{"inputTokens":3,`, false), body(`"outputTokens":4}}`, true))
	if len(got) != 1 {
		t.Fatalf("records %+v", got)
	}
	r := got[0]
	want := Record{RequestID: "rid-1", AccountID: "acct", Tier: "pro", UserID: "u1", PrincipalKind: "user", APIKeyID: "key-1", Model: "called-model",
		ResolvedModel: "eu.m:0", Operation: "Converse", Region: "eu-west-1", IdentityKind: KindTenant, Status: 200, Complete: true,
		Tokens: Tokens{Input: 3, Output: 4}, FinalUsage: true, TTFBMS: 20, LatencyMS: 40, Time: r.Time}
	if r != want {
		t.Fatalf("record\n%+v\nwant\n%+v", r, want)
	}

	// Cut before the end of the body: recorded incomplete.
	got = observed(t, reqHeaders(true), respHeaders, body(`{"usage":{"inputTokens":3,`, false))
	if len(got) != 1 || got[0].Complete || got[0].FinalUsage || got[0].Status != 200 {
		t.Fatalf("cut: %+v", got)
	}
	// No response at all (Envoy closed the stream first), or no request
	// id: nothing is invented.
	if got = observed(t, reqHeaders(true)); len(got) != 0 {
		t.Fatalf("no response: %+v", got)
	}
	if got = observed(t, reqHeaders(false), respHeaders, body(`{}`, true)); len(got) != 0 {
		t.Fatalf("no request id: %+v", got)
	}
}
