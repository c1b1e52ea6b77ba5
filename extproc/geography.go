package extproc

import (
	"fmt"
	"strings"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/config"
)

// placeModel checks that the model a request names can be served where the
// request is signed: a cross-region profile id's geography prefix must serve
// the signer's region (extproc.geography: reject, or rewrite the prefix in
// the path), and a Bedrock ARN must name the signer's region and AWS
// account. It may change p.path and p.op.ModelID; sign sends the new path.
func (s *Server) placeModel(p *pending) *reject {
	id, region := p.op.ModelID, p.choice.region
	if id == "" {
		return nil
	}
	if arn, ok := bedrockpath.ParseARN(id); ok {
		if arn.Region != "" && arn.Region != region {
			return newReject(400, "model_arn_mismatch", fmt.Sprintf(
				"the model ARN names region %s, but this account's requests are served in %s; use an ARN of %s", arn.Region, region, region))
		}
		if arn.Account != "" && p.choice.awsAccount != "" && arn.Account != p.choice.awsAccount {
			return newReject(400, "model_arn_mismatch", "the model ARN names an AWS account other than the one serving this account's requests")
		}
		if res, ok := strings.CutPrefix(arn.Resource, "inference-profile/"); ok {
			if geo, _ := bedrockpath.SplitGeography(res); geo != "" && !bedrockpath.GeographyServes(geo, region) {
				return geographyReject(geo, res, region)
			}
		}
		return nil
	}
	geo, rest := bedrockpath.SplitGeography(id)
	if geo == "" || bedrockpath.GeographyServes(geo, region) {
		return nil
	}
	home := bedrockpath.HomeGeography(region)
	if s.cfg.Geography != config.GeographyRewrite || home == "" {
		return geographyReject(geo, rest, region)
	}
	// The prefix is rewritten in the path as the client sent it; a prefix
	// that is not literally at the start of the model segment (say, percent-
	// encoded) is refused rather than re-encoded. The model segment follows
	// the first segment (/model/, /inference-profiles/, /foundation-models/).
	coll, _, _ := strings.Cut(strings.TrimPrefix(p.op.RawPath, "/"), "/")
	oldPrefix, newPrefix := "/"+coll+"/"+geo+".", "/"+coll+"/"+home+"."
	if !strings.HasPrefix(p.op.RawPath, oldPrefix) || !strings.HasPrefix(p.path, oldPrefix) {
		return geographyReject(geo, rest, region)
	}
	p.path = newPrefix + strings.TrimPrefix(p.path, oldPrefix)
	p.op.RawPath = newPrefix + strings.TrimPrefix(p.op.RawPath, oldPrefix)
	p.op.ModelID = home + "." + rest
	return nil
}

// geographyReject names the prefix to use instead of geo for region.
func geographyReject(geo, rest, region string) *reject {
	use := "global." + rest
	if home := bedrockpath.HomeGeography(region); home != "" {
		use = home + "." + rest + " (or global." + rest + ")"
	}
	return newReject(400, "geography_mismatch", fmt.Sprintf(
		"the model id uses the %s. cross-region geography, but this account's requests are served in %s; use %s", geo, region, use))
}

// roleAccount returns the AWS account id of an IAM role ARN
// (arn:aws:iam::123456789012:role/name), or "".
func roleAccount(roleARN string) string {
	parts := strings.SplitN(roleARN, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" {
		return ""
	}
	return parts[4]
}
