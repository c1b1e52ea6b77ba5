package extproc

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tenantgate/tenantgate/internal/awserr"
)

// AWS error responses name the principal that signed the request (the
// platform's IAM identity or a tenant's assumed role, with its account id)
// and the resources it touched. ext_proc therefore asks Envoy for the
// response headers of every request it lets go upstream; for an error status
// it asks for the buffered body and returns it with every ARN and account id
// replaced (see package awserr). Successful responses, streams included, are
// never buffered: only their headers pass through ext_proc, unchanged.

// responseState is what a stream remembers about the upstream response.
type responseState struct {
	// scrub: the response is an error whose body was requested.
	scrub bool
	// encoded: the error body has a content-encoding and cannot be read.
	encoded bool
}

// scrubStatus is the lowest response status whose body is scrubbed.
const scrubStatus = 400

// encodedErrorMessage replaces an error body that cannot be scrubbed because
// it is compressed; the error type stays in x-amzn-errortype.
const encodedErrorMessage = "The upstream error message was removed because it could not be checked for AWS account details."

// watchResponses makes a request-phase reply that lets the request go
// upstream also ask Envoy for the response headers. Immediate responses are
// left alone. The reply's own mode override (e.g. a buffered request body)
// is kept.
func watchResponses(resp *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	if resp.GetRequestHeaders() == nil {
		return resp
	}
	mode := &filterv3.ProcessingMode{
		RequestHeaderMode:   filterv3.ProcessingMode_SEND,
		RequestBodyMode:     filterv3.ProcessingMode_NONE,
		ResponseBodyMode:    filterv3.ProcessingMode_NONE,
		RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
	}
	if resp.ModeOverride != nil {
		mode = proto.Clone(resp.ModeOverride).(*filterv3.ProcessingMode)
	}
	mode.ResponseHeaderMode = filterv3.ProcessingMode_SEND
	resp.ModeOverride = mode
	return resp
}

// onResponseHeaders passes successful responses through and, for an error
// status with a body, asks for the buffered body and scrubs header values.
func (s *Server) onResponseHeaders(st *streamState, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hdrs := headerMap(h.GetHeaders())
	status := 0
	if v := hdrs[":status"]; len(v) > 0 {
		status, _ = strconv.Atoi(v[0])
	}
	reply := &extprocv3.HeadersResponse{}
	out := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: reply}}
	if status < scrubStatus {
		return out
	}
	if m := scrubHeaders(hdrs); m != nil {
		reply.Response = &extprocv3.CommonResponse{HeaderMutation: m}
	}
	if h.GetEndOfStream() {
		return out
	}
	ce := strings.ToLower(strings.TrimSpace(firstValue(hdrs, "content-encoding")))
	st.response = responseState{scrub: true, encoded: ce != "" && ce != "identity"}
	out.ModeOverride = &filterv3.ProcessingMode{
		RequestHeaderMode:   filterv3.ProcessingMode_SEND,
		ResponseHeaderMode:  filterv3.ProcessingMode_SEND,
		RequestBodyMode:     filterv3.ProcessingMode_NONE,
		ResponseBodyMode:    filterv3.ProcessingMode_BUFFERED,
		RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
	}
	return out
}

// onResponseBody rewrites a buffered error body without AWS identities and
// sets content-length to its new length (Envoy rejects a mismatch).
func (s *Server) onResponseBody(ctx context.Context, st *streamState, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	reply := &extprocv3.BodyResponse{}
	out := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: reply}}
	if !st.response.scrub {
		return out
	}
	st.response.scrub = false
	body := b.GetBody()
	m := &extprocv3.HeaderMutation{}
	var scrubbed []byte
	result := "scrubbed"
	if st.response.encoded {
		scrubbed, _ = json.Marshal(map[string]string{"message": encodedErrorMessage})
		m.RemoveHeaders = []string{"content-encoding"}
		result = "replaced"
	} else {
		scrubbed = awserr.Scrub(body)
	}
	if string(scrubbed) == string(body) {
		s.errorBodies.WithLabelValues("unchanged").Inc()
		return out
	}
	s.errorBodies.WithLabelValues(result).Inc()
	s.log.DebugContext(ctx, "AWS error body scrubbed", "result", result, "bytes_in", len(body), "bytes_out", len(scrubbed))
	m.SetHeaders = []*corev3.HeaderValueOption{setHeader("content-length", strconv.Itoa(len(scrubbed)))}
	reply.Response = &extprocv3.CommonResponse{
		HeaderMutation: m,
		BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: scrubbed}},
	}
	return out
}

// keepResponseHeaders are never rewritten by scrubHeaders.
var keepResponseHeaders = map[string]bool{":status": true, "content-length": true, "date": true}

// scrubHeaders returns a mutation replacing header values that name AWS
// identities, or nil when there are none.
func scrubHeaders(hdrs map[string][]string) *extprocv3.HeaderMutation {
	var m *extprocv3.HeaderMutation
	for name, vals := range hdrs {
		if keepResponseHeaders[name] || strings.HasPrefix(name, ":") {
			continue
		}
		joined := strings.Join(vals, ", ")
		if clean := awserr.ScrubText(joined); clean != joined {
			if m == nil {
				m = &extprocv3.HeaderMutation{}
			}
			m.SetHeaders = append(m.SetHeaders, setHeader(name, clean))
		}
	}
	return m
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func firstValue(hdrs map[string][]string, name string) string {
	if v := hdrs[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
