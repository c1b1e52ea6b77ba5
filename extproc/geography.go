package extproc

import (
	"strings"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/config"
)

// placeModel checks that the model a request names in its path can be
// served where the request is signed: a cross-region profile id's geography
// prefix must serve the signer's region (extproc.geography: reject, or
// rewrite the prefix in the path), and a Bedrock ARN must name the signer's
// region and AWS account. It may change p.path and p.op.ModelID; sign sends
// the new path.
func (s *Server) placeModel(p *pending) *reject {
	if p.op.Op == bedrockpath.StartAsyncInvoke {
		return nil // the model is in the body: placeBodyModel
	}
	if rej := s.bindProfile(p); rej != nil {
		return rej
	}
	if rej := s.placePathModel(p); rej != nil {
		return rej
	}
	return s.checkProfileARN(p, p.op.ModelID)
}

// placePathModel applies the geography and ARN rules to the path's model.
func (s *Server) placePathModel(p *pending) *reject {
	id := p.op.ModelID
	geo, rest, rej := s.checkPlace(id, p.choice)
	if rej != nil || geo == "" {
		return rej
	}
	home := bedrockpath.HomeGeography(p.choice.region)
	if s.cfg.Geography != config.GeographyRewrite || home == "" {
		return geographyReject(geo, rest, p.choice.region)
	}
	// The prefix is rewritten in the path as the client sent it; a prefix
	// that is not literally at the start of the model segment (say, percent-
	// encoded) is refused rather than re-encoded. The model segment follows
	// the first segment (/model/, /inference-profiles/, /foundation-models/).
	coll, _, _ := strings.Cut(strings.TrimPrefix(p.op.RawPath, "/"), "/")
	oldPrefix, newPrefix := "/"+coll+"/"+geo+".", "/"+coll+"/"+home+"."
	if !strings.HasPrefix(p.op.RawPath, oldPrefix) || !strings.HasPrefix(p.path, oldPrefix) {
		return geographyReject(geo, rest, p.choice.region)
	}
	p.path = newPrefix + strings.TrimPrefix(p.path, oldPrefix)
	p.op.RawPath = newPrefix + strings.TrimPrefix(p.op.RawPath, oldPrefix)
	p.op.ModelID = home + "." + rest
	return nil
}

// placeBodyModel applies the same rules to a model named in the body
// (StartAsyncInvoke's modelId, in p.op.ModelID once read). The body is
// signed as sent, so a foreign geography is refused in both modes.
func (s *Server) placeBodyModel(p *pending) *reject {
	geo, rest, rej := s.checkPlace(p.op.ModelID, p.choice)
	if rej != nil {
		return rej
	}
	if geo != "" {
		return geographyReject(geo, rest, p.choice.region)
	}
	return s.checkProfileARN(p, p.op.ModelID)
}

// checkPlace refuses a model ARN of another region or account (or naming a
// profile of a foreign geography); for a plain id whose geography prefix
// does not serve ch's region it returns that geography and the id without
// it, and geo "" when the id may be sent as it is.
func (s *Server) checkPlace(id string, ch choice) (geo, rest string, rej *reject) {
	region := ch.region
	if id == "" {
		return "", "", nil
	}
	if arn, ok := bedrockpath.ParseARN(id); ok {
		if arn.Region != "" && arn.Region != region {
			return "", "", newReject(apierror.ModelARNMismatch, "region "+arn.Region, "; use an ARN of "+region)
		}
		if arn.Account != "" && ch.awsAccount != "" && arn.Account != ch.awsAccount {
			// The accounts are not named: the serving one is the tenant's.
			return "", "", newReject(apierror.ModelARNMismatch, "an AWS account", "")
		}
		if res, ok := strings.CutPrefix(arn.Resource, "inference-profile/"); ok {
			if g, r := bedrockpath.SplitGeography(res); g != "" && !bedrockpath.GeographyServes(g, region) {
				return "", "", geographyReject(g, r, region)
			}
		}
		return "", "", nil
	}
	geo, rest = bedrockpath.SplitGeography(id)
	if geo == "" || bedrockpath.GeographyServes(geo, region) {
		return "", "", nil
	}
	return geo, rest, nil
}

// geographyReject names the prefix to use instead of geo for region.
func geographyReject(geo, rest, region string) *reject {
	use := "global." + rest
	if home := bedrockpath.HomeGeography(region); home != "" {
		use = home + "." + rest + " (or global." + rest + ")"
	}
	return newReject(apierror.GeographyMismatch, geo, region, use)
}
