package extproc

import (
	"net/url"
	"strings"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/bedrockpath"
)

// systemDefined is the ListInferenceProfiles type filter (query parameter
// "type", the SDKs' typeEquals) of the profiles every account may see.
const systemDefined = "SYSTEM_DEFINED"

// hostFor is the upstream host p is signed for and sent to: the control-plane
// endpoint of the chosen region for control-plane operations, else the
// runtime endpoint.
func (s *Server) hostFor(p *pending) string {
	if p.op.Op.ControlPlane() {
		return s.cfg.ControlHost(p.choice.region)
	}
	return s.cfg.Host(p.choice.region)
}

// prepare applies the rules that refuse or rewrite a request once its signer
// is known, before it is signed.
func (s *Server) prepare(p *pending) *reject {
	if p.op.Op.ControlPlane() {
		if s.cfg.ControlEndpointTemplate == "" {
			return newReject(apierror.UnsupportedOperation)
		}
		if rej := s.platformControlPlane(p); rej != nil {
			return rej
		}
	}
	return s.placeModel(p)
}

// platformControlPlane keeps platform-signed control-plane calls to what
// every account may see: the platform account's application inference
// profiles are not listed (ListInferenceProfiles is narrowed to
// SYSTEM_DEFINED) and cannot be read. Tenant-signed calls see the tenant's
// own AWS account and are not narrowed.
func (s *Server) platformControlPlane(p *pending) *reject {
	if p.choice.kind != KindPlatform {
		return nil
	}
	denied := newReject(apierror.ApplicationProfileDenied)
	switch p.op.Op {
	case bedrockpath.ListInferenceProfiles:
		q, err := url.ParseQuery(p.op.Query)
		if err != nil {
			return newReject(apierror.BadRequest, "invalid query string")
		}
		types, present := q["type"]
		for _, t := range types {
			if t != systemDefined {
				return denied
			}
		}
		if !present {
			sep := "?"
			if strings.Contains(p.path, "?") {
				sep = "&"
			}
			p.path += sep + "type=" + systemDefined
			if p.op.Query != "" {
				p.op.Query += "&"
			}
			p.op.Query += "type=" + systemDefined
		}
	case bedrockpath.GetInferenceProfile:
		if !systemProfile(p.op.ModelID) {
			return denied
		}
	}
	return nil
}

// systemProfile reports whether id names a system-defined (cross-region)
// inference profile: a geography-prefixed id, or its inference-profile ARN.
// Anything else may be an application inference profile.
func systemProfile(id string) bool {
	if arn, ok := bedrockpath.ParseARN(id); ok {
		res, ok := strings.CutPrefix(arn.Resource, "inference-profile/")
		if !ok {
			return false
		}
		id = res
	}
	geo, _ := bedrockpath.SplitGeography(id)
	return geo != ""
}
