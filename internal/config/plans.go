package config

import (
	"fmt"
	"path"
	"strings"
)

// BedrockHeaderPrefix starts the Bedrock request headers that a caller can
// send to choose how (and at what price) a request is served: service tier,
// performance configuration, guardrail, trace, invocation-log metadata,
// project. Plans allow them per tier; the others never reach AWS.
const BedrockHeaderPrefix = "x-amzn-bedrock-"

// Policies for x-amzn-bedrock-* request headers a tier does not allow.
const (
	UnlistedBedrockHeadersStrip  = "strip"
	UnlistedBedrockHeadersReject = "reject"
)

// DefaultBedrockHeaders are the x-amzn-bedrock-* request headers allowed for
// a tier without its own list: they change neither price nor who is billed.
// x-amzn-bedrock-accept is the response MIME type of
// InvokeModelWithResponseStream; x-amzn-bedrock-trace only adds the
// assessment of a guardrail the request already runs to the response. Not
// allowed by default: service-tier (priority costs more),
// performanceconfig-latency (optimized costs more), guardrailidentifier and
// guardrailversion (guardrails are billed per text unit, and name
// guardrails of the signing account), request-metadata (written into the
// signing account's invocation logs) and projectidentifier (cost
// attribution in the signing account).
var DefaultBedrockHeaders = []string{"x-amzn-bedrock-accept", "x-amzn-bedrock-trace"}

// Plans is the tier catalog: which tiers are enterprise, which models each
// tier may call, and the billing gate.
type Plans struct {
	// EnterpriseTiers default: tier_125_800, tier_200_1000, tier_150_1200.
	EnterpriseTiers []string `yaml:"enterprise_tiers"`
	// Models maps a tier name to the Bedrock model id globs (path.Match
	// syntax, matched against the decoded model id or ARN) it may call;
	// "*" alone means every model. List every tier your accounts have
	// (enterprise tiers too; "none" for accounts without a credit_accounts
	// row): accounts of a tier that is not listed are refused with 403
	// unknown_tier unless DefaultModels is set.
	Models map[string][]string `yaml:"models"`
	// DefaultModels are the globs of tiers not listed in Models. Default:
	// none, so unlisted tiers are refused (unknown_tier); setting it lets
	// every unknown tier call these models.
	DefaultModels []string `yaml:"default_models"`
	// BlockOnNoCredits refuses calls when credit_accounts.balance <= 0
	// (default false).
	BlockOnNoCredits bool `yaml:"block_on_no_credits"`
	// BedrockHeaders maps a tier name to the x-amzn-bedrock-* request
	// headers (e.g. x-amzn-bedrock-service-tier) its callers may send;
	// names are matched case-insensitively and "*" allows every one. A
	// tier that is not listed gets DefaultBedrockHeaders.
	BedrockHeaders map[string][]string `yaml:"bedrock_headers"`
	// DefaultBedrockHeaders default: [x-amzn-bedrock-accept,
	// x-amzn-bedrock-trace] (the ones that change neither price nor billing).
	DefaultBedrockHeaders []string `yaml:"default_bedrock_headers"`
	// UnlistedBedrockHeaders is what happens to an x-amzn-bedrock-* header
	// the tier does not allow: "strip" (default: removed before signing, the
	// request goes on without it) or "reject" (400 bedrock_header_not_allowed).
	UnlistedBedrockHeaders string `yaml:"unlisted_bedrock_headers"`
}

func (p *Plans) applyDefaults() {
	if p.EnterpriseTiers == nil {
		p.EnterpriseTiers = []string{"tier_125_800", "tier_200_1000", "tier_150_1200"}
	}
	if p.DefaultBedrockHeaders == nil {
		p.DefaultBedrockHeaders = append([]string(nil), DefaultBedrockHeaders...)
	}
	if p.UnlistedBedrockHeaders == "" {
		p.UnlistedBedrockHeaders = UnlistedBedrockHeadersStrip
	}
}

func (p *Plans) validate() []error {
	var errs []error
	check := func(where string, globs []string) {
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: bad glob %q: %w", where, g, err))
			}
		}
	}
	check("plans.default_models", p.DefaultModels)
	for tier, globs := range p.Models {
		check("plans.models."+tier, globs)
	}
	checkHeaders := func(where string, names []string) {
		for _, n := range names {
			if !ValidBedrockHeaderName(n) {
				errs = append(errs, fmt.Errorf("%s: %q is not \"*\" or an %s* header name", where, n, BedrockHeaderPrefix))
			}
		}
	}
	checkHeaders("plans.default_bedrock_headers", p.DefaultBedrockHeaders)
	for tier, names := range p.BedrockHeaders {
		checkHeaders("plans.bedrock_headers."+tier, names)
	}
	switch p.UnlistedBedrockHeaders {
	case UnlistedBedrockHeadersStrip, UnlistedBedrockHeadersReject:
	default:
		errs = append(errs, fmt.Errorf("plans.unlisted_bedrock_headers: %q is not strip or reject", p.UnlistedBedrockHeaders))
	}
	return errs
}

// ValidBedrockHeaderName reports whether name is "*" or a header name
// (letters, digits, '-') starting with BedrockHeaderPrefix, in any case.
func ValidBedrockHeaderName(name string) bool {
	if name == "*" {
		return true
	}
	l := strings.ToLower(name)
	if !strings.HasPrefix(l, BedrockHeaderPrefix) || len(l) == len(BedrockHeaderPrefix) {
		return false
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
