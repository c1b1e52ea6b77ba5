package usage

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/identity"
)

// MetadataNamespace is the dynamic metadata namespace in which the signing
// ext_proc filter leaves what it decided about a request (identity kind,
// region, the model as called and as sent) for the metering filter, which
// must forward it (metadata_options.forwarding_namespaces) together with
// identity.MetadataNamespace.
const MetadataNamespace = "tenantgate.usage"

// Keys in MetadataNamespace.
const (
	KeyModel         = "model"
	KeyResolvedModel = "resolved_model"
	KeyKind          = "identity_kind"
	KeyRegion        = "region"
)

// Metadata returns the struct the signing filter emits as dynamic metadata.
func Metadata(model, resolved, kind, region string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			KeyModel:         structpb.NewStringValue(model),
			KeyResolvedModel: structpb.NewStringValue(resolved),
			KeyKind:          structpb.NewStringValue(kind),
			KeyRegion:        structpb.NewStringValue(region),
		}}),
	}}
}

// RecordSink receives finished records (a *Recorder).
type RecordSink interface {
	Record(Record)
}

// Observer meters the ext_proc streams of Envoy's metering filter, which
// runs in observability_mode: Envoy sends request headers, response
// headers and the STREAMED response body without waiting for answers, so
// metering adds no time to a response. The observer sends nothing back.
type Observer struct {
	Sink   RecordSink
	Logger *slog.Logger
	Now    func() time.Time
}

// observation is one request being metered.
type observation struct {
	rec       Record
	meter     *Meter
	start     time.Time
	firstByte time.Time
	metered   bool // a Bedrock runtime operation worth a record
	responded bool
}

// Observe reads one request's messages, first included, until Envoy closes
// the stream, then records the request.
func (o *Observer) Observe(ctx context.Context, first *extprocv3.ProcessingRequest, recv func() (*extprocv3.ProcessingRequest, error)) error {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	ob := &observation{}
	req := first
	for {
		o.handle(ob, req, now())
		if ob.rec.Complete {
			break
		}
		var err error
		req, err = recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil && status.Code(err) != codes.Canceled && o.Logger != nil {
				o.Logger.WarnContext(ctx, "metering stream ended", "error", err)
			}
			break
		}
	}
	o.finish(ob, now())
	return nil
}

func (o *Observer) handle(ob *observation, req *extprocv3.ProcessingRequest, t time.Time) {
	if md := req.GetMetadataContext().GetFilterMetadata(); md != nil {
		ob.applyMetadata(md)
	}
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		ob.start = t
		ob.rec.Time = t.UTC()
		h := headerGetter(r.RequestHeaders)
		ob.rec.RequestID = h("x-request-id")
		p, err := bedrockpath.Parse(h(":method"), h(":path"))
		if err != nil || p.Op.ControlPlane() {
			return
		}
		ob.metered = true
		ob.rec.Operation = string(p.Op)
		ob.rec.ResolvedModel = p.ModelID
		if ob.rec.Model == "" {
			ob.rec.Model = p.ModelID
		}
		if ob.rec.Region == "" {
			ob.rec.Region = regionOf(h(":authority"))
		}
		ob.meter = NewMeter(p.Op)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if ob.meter == nil {
			return
		}
		h := headerGetter(r.ResponseHeaders)
		st, _ := strconv.Atoi(h(":status"))
		ob.rec.Status = st
		ob.responded = true
		ob.meter.Headers(st, h)
		if r.ResponseHeaders.GetEndOfStream() {
			ob.firstByte = t
			ob.rec.Complete = true
		}
	case *extprocv3.ProcessingRequest_ResponseBody:
		if ob.meter == nil {
			return
		}
		if ob.firstByte.IsZero() && len(r.ResponseBody.GetBody()) > 0 {
			ob.firstByte = t
		}
		ob.meter.Body(r.ResponseBody.GetBody())
		if r.ResponseBody.GetEndOfStream() {
			ob.rec.Complete = true
		}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		ob.rec.Complete = true
	}
}

func (ob *observation) applyMetadata(md map[string]*structpb.Struct) {
	if s := md[identity.MetadataNamespace]; s != nil {
		if id, err := identity.FromStruct(s); err == nil {
			ob.rec.AccountID, ob.rec.Tier, ob.rec.UserID, ob.rec.PrincipalKind = id.AccountID, id.Tier, id.UserID, id.Principal
			ob.rec.APIKeyID = id.APIKeyID
		}
	}
	if s := md[MetadataNamespace]; s != nil {
		f := s.GetFields()
		if v := f[KeyModel].GetStringValue(); v != "" {
			ob.rec.Model = v
		}
		if v := f[KeyKind].GetStringValue(); v != "" {
			ob.rec.IdentityKind = v
		}
		if v := f[KeyRegion].GetStringValue(); v != "" {
			ob.rec.Region = v
		}
	}
}

func (o *Observer) finish(ob *observation, t time.Time) {
	if !ob.metered || !ob.responded || ob.rec.AccountID == "" {
		return
	}
	if ob.rec.Complete {
		ob.meter.Done()
	}
	ob.rec.Tokens, ob.rec.FinalUsage, ob.rec.ErrorType = ob.meter.Result()
	ob.rec.LatencyMS = ms(t.Sub(ob.start))
	if !ob.firstByte.IsZero() {
		ob.rec.TTFBMS = ms(ob.firstByte.Sub(ob.start))
	}
	if ob.rec.RequestID == "" {
		return
	}
	o.Sink.Record(ob.rec)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// regionOf reads the region of a bedrock-runtime.<region>.amazonaws.com
// host.
func regionOf(host string) string {
	if h, ok := strings.CutPrefix(host, "bedrock-runtime."); ok {
		if r, _, ok := strings.Cut(h, "."); ok {
			return r
		}
	}
	return ""
}

func headerGetter(h *extprocv3.HttpHeaders) func(string) string {
	m := map[string]string{}
	for _, hv := range h.GetHeaders().GetHeaders() {
		k := strings.ToLower(hv.GetKey())
		if _, ok := m[k]; ok {
			continue
		}
		if v := hv.GetRawValue(); len(v) > 0 {
			m[k] = string(v)
		} else {
			m[k] = hv.GetValue()
		}
	}
	return func(name string) string { return m[name] }
}
