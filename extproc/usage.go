package extproc

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/usage"
)

// withUsageMetadata attaches to the reply that lets a signed request go
// upstream what the metering filter cannot see in the request it observes:
// the identity kind, the region, and the model as the client called it (the
// forwarded path names the model as sent). Envoy files it under
// usage.MetadataNamespace (ext_proc metadata_options.receiving_namespaces).
func withUsageMetadata(st *streamState, resp *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	p := st.signed
	if p == nil {
		return resp
	}
	st.signed = nil
	called := p.op.ModelID
	if v := p.headers[":path"]; len(v) > 0 {
		if op, err := bedrockpath.Parse(p.method, v[0]); err == nil && op.ModelID != "" {
			called = op.ModelID
		}
	}
	resp.DynamicMetadata = usage.Metadata(called, p.op.ModelID, p.choice.kind, p.choice.region)
	return resp
}
