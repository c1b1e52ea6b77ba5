package extproc

import (
	"context"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/tenantgate/tenantgate/internal/usage"
)

// The reply that lets a signed request go carries the usage metadata (as
// called, as sent, identity kind, region) for the metering filter; replies
// that refuse a request carry none.
func TestSignedReplyCarriesUsageMetadata(t *testing.T) {
	s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
	model := "anthropic.claude-3-haiku-20240307-v1:0"
	hs := clientHeaders("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
	st := &streamState{}
	if r := s.handle(context.Background(), st, headersMsg(proID, false, hs...)); r.GetDynamicMetadata() != nil {
		t.Fatalf("metadata before signing: %v", r.GetDynamicMetadata())
	}
	resp := s.handle(context.Background(), st, bodyMsg([]byte(`{"messages":[]}`), true))
	if resp.GetRequestBody() == nil {
		t.Fatalf("not signed: %v", resp)
	}
	md := resp.GetDynamicMetadata().GetFields()[usage.MetadataNamespace].GetStructValue().GetFields()
	if md[usage.KeyModel].GetStringValue() != model || md[usage.KeyResolvedModel].GetStringValue() != model ||
		md[usage.KeyKind].GetStringValue() != KindPlatform || md[usage.KeyRegion].GetStringValue() != "us-east-1" {
		t.Fatalf("usage metadata %v", md)
	}
	// A refused request: no metadata.
	refused := s.handle(context.Background(), &streamState{}, headersMsg(nil, true, hs...))
	if refused.GetImmediateResponse() == nil || refused.GetDynamicMetadata() != nil {
		t.Fatalf("refusal %v", refused)
	}
}

type obsStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*extprocv3.ProcessingRequest
	sent int
}

func (o *obsStream) Context() context.Context { return o.ctx }
func (o *obsStream) Send(*extprocv3.ProcessingResponse) error {
	o.sent++
	return nil
}

func (o *obsStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if len(o.msgs) == 0 {
		return nil, context.Canceled
	}
	m := o.msgs[0]
	o.msgs = o.msgs[1:]
	return m, nil
}

type observerFunc func(first *extprocv3.ProcessingRequest, recv func() (*extprocv3.ProcessingRequest, error)) error

func (f observerFunc) Observe(_ context.Context, first *extprocv3.ProcessingRequest, recv func() (*extprocv3.ProcessingRequest, error)) error {
	return f(first, recv)
}

// Streams of the observability-mode filter go to the observer and are never
// answered (Envoy ignores answers there); without an observer they are read
// and dropped.
func TestObservabilityStreamsGoToObserver(t *testing.T) {
	msg := func() *extprocv3.ProcessingRequest {
		m := headersMsg(proID, true, clientHeaders("POST", "/model/m/converse")...)
		m.ObservabilityMode = true
		return m
	}
	seen := 0
	s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
	s.observer = observerFunc(func(first *extprocv3.ProcessingRequest, recv func() (*extprocv3.ProcessingRequest, error)) error {
		seen++
		for {
			if _, err := recv(); err != nil {
				return nil
			}
			seen++
		}
	})
	st := &obsStream{ctx: context.Background(), msgs: []*extprocv3.ProcessingRequest{msg(), msg(), msg()}}
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	if seen != 3 || st.sent != 0 {
		t.Fatalf("observer saw %d messages, %d answers sent", seen, st.sent)
	}
	s.observer = nil
	st = &obsStream{ctx: context.Background(), msgs: []*extprocv3.ProcessingRequest{msg(), msg()}}
	if err := s.Process(st); err != nil || st.sent != 0 || len(st.msgs) != 0 {
		t.Fatalf("without observer: err %v, sent %d, unread %d", err, st.sent, len(st.msgs))
	}
}
