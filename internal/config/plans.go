package config

import (
	"fmt"
	"path"
)

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
}

func (p *Plans) applyDefaults() {
	if p.EnterpriseTiers == nil {
		p.EnterpriseTiers = []string{"tier_125_800", "tier_200_1000", "tier_150_1200"}
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
	return errs
}
