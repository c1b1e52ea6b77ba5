package extproc

import (
	"strings"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// applicationProfilePrefix starts the resource of an application inference
// profile ARN.
const applicationProfilePrefix = "application-inference-profile/"

// bindProfile applies the tenant's application inference profiles (the
// route's inference_profiles) to the model in the path: a model id the
// tenant mapped is replaced in the path by its profile ARN, so that the
// tenant's traffic runs (and is billed) on its own profile. The geography
// and ARN rules then apply to the ARN, and checkProfileARN to its owner.
func (s *Server) bindProfile(p *pending) *reject {
	id := p.op.ModelID
	if id == "" {
		return nil
	}
	if arn, ok := p.choice.profiles[id]; ok {
		if !strings.HasPrefix(p.op.RawPath, "/model/") {
			return nil // control-plane reads name the model itself
		}
		segs := strings.Split(p.op.RawPath, "/") // "", "model", id, action
		if len(segs) != 4 {
			return newReject(apierror.BadRequest, "the model segment cannot be rewritten")
		}
		raw := "/model/" + escapeSegment(arn) + "/" + segs[3]
		p.path = raw
		if p.op.Query != "" {
			p.path += "?" + p.op.Query
		}
		p.op.RawPath, p.op.ModelID = raw, arn
		return nil
	}
	return nil
}

// checkProfileARN refuses an application inference profile (ARN, or bare
// profile id) the caller may not use; other model ids pass. A profile bound to the caller passes
// when its plan allows the model the profile is bound to. Otherwise only a
// request signed with the tenant's own role, naming a profile of that
// role's AWS account, passes, and only while the tenant binds no profiles
// (a tenant that binds profiles uses those: a profile another tenant of
// the same AWS account bound is refused). On the platform's shared identity
// every application profile could be another tenant's, so none passes.
func (s *Server) checkProfileARN(p *pending, id string) *reject {
	if id == "" {
		return nil
	}
	account := ""
	if arn, ok := bedrockpath.ParseARN(id); ok {
		if !strings.HasPrefix(arn.Resource, applicationProfilePrefix) {
			return nil
		}
		account = arn.Account
	} else if strings.ContainsAny(id, ".:/") {
		return nil
	} else {
		// A bare id without a provider prefix is not a foundation model or
		// system profile: AWS resolves it as an application inference
		// profile of the signer's account.
		account = p.choice.awsAccount
	}
	for model, bound := range p.choice.profiles {
		if bound != id && bound[strings.LastIndexByte(bound, '/')+1:] != id {
			continue
		}
		tier := p.tier
		if tier == "" {
			tier = tenant.NoTier
		}
		if !s.models.ModelAllowed(tier, model) {
			return newReject(apierror.ModelNotAllowed)
		}
		return nil
	}
	if p.choice.kind == KindTenant && len(p.choice.profiles) == 0 && account != "" && account == p.choice.awsAccount {
		return nil
	}
	return errProfileNotAllowed()
}

func errProfileNotAllowed() *reject {
	return newReject(apierror.InferenceProfileNotAllowed)
}

// escapeSegment percent-encodes s as one path segment the way the AWS SDKs
// do: every byte but the unreserved characters (A-Z a-z 0-9 - . _ ~).
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
