// Package plan owns the tier catalog: which plan tiers are enterprise, which
// Bedrock models a tier may call, and the billing gate on credit balance. It
// is built from config.Plans and is safe for concurrent use.
package plan

import (
	"fmt"
	"path"
	"slices"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// Catalog answers plan questions for tiers. It is immutable after New.
type Catalog struct {
	enterprise    map[string]bool
	models        map[string][]string
	defaultModels []string
	blockNoCredit bool
	headers       bedrockHeaderRules
}

// New builds a catalog from the plans configuration. Every glob is checked
// so that a bad pattern fails at start rather than denying calls later.
func New(cfg config.Plans) (*Catalog, error) {
	c := &Catalog{
		enterprise:    make(map[string]bool, len(cfg.EnterpriseTiers)),
		models:        make(map[string][]string, len(cfg.Models)),
		defaultModels: append([]string(nil), cfg.DefaultModels...),
		blockNoCredit: cfg.BlockOnNoCredits,
	}
	var err error
	if c.headers, err = newBedrockHeaderRules(cfg); err != nil {
		return nil, err
	}
	for _, t := range cfg.EnterpriseTiers {
		c.enterprise[t] = true
	}
	check := func(where string, globs []string) error {
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				return fmt.Errorf("plan: %s: bad model glob %q: %w", where, g, err)
			}
		}
		return nil
	}
	if err := check("default models", c.defaultModels); err != nil {
		return nil, err
	}
	for tier, globs := range cfg.Models {
		if err := check("tier "+tier, globs); err != nil {
			return nil, err
		}
		c.models[tier] = append([]string(nil), globs...)
	}
	return c, nil
}

// IsEnterprise reports whether tier is one of the configured enterprise tiers.
func (c *Catalog) IsEnterprise(tier string) bool {
	return c.enterprise[tier]
}

// Known reports whether the catalog has model rules for tier: its own
// plans.models entry (even an empty one), or a non-empty
// plans.default_models that covers every unlisted tier. Accounts of an
// unknown tier, including accounts without a plan row (tenant.NoTier)
// unless "none" is listed, are refused outright.
func (c *Catalog) Known(tier string) bool {
	if _, ok := c.models[tier]; ok {
		return true
	}
	return len(c.defaultModels) > 0
}

// Unknown returns the tiers among tiers that Known refuses, sorted and
// without duplicates.
func (c *Catalog) Unknown(tiers []string) []string {
	var out []string
	for _, t := range tiers {
		if !c.Known(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ModelAllowed reports whether tier may call modelID (a decoded model id or
// ARN). The tier's own glob list is used when configured (even if empty,
// which allows nothing), otherwise the default list, which is empty (allows
// nothing) unless plans.default_models is set. Globs use path.Match,
// where '*' does not cross '/'; a glob that is exactly "*" therefore gets
// special meaning: every model, including ARNs (which contain '/'). An empty
// model id is never allowed.
func (c *Catalog) ModelAllowed(tier, modelID string) bool {
	_, ok := c.ModelRule(tier, modelID)
	return ok
}

// Rule is the plan rule that allows a model: the glob and whether it came
// from plans.default_models (the tier has no list of its own).
type Rule struct {
	Glob    string `json:"glob"`
	Default bool   `json:"default_models"`
}

// ModelRule returns the first glob of tier's list (or of the default list)
// that allows modelID, with ModelAllowed's rules; false when none does.
func (c *Catalog) ModelRule(tier, modelID string) (Rule, bool) {
	if modelID == "" {
		return Rule{}, false
	}
	globs, ok := c.models[tier]
	if !ok {
		globs = c.defaultModels
	}
	for _, g := range globs {
		if g == "*" || matchModel(g, modelID) {
			return Rule{Glob: g, Default: !ok}, true
		}
	}
	return Rule{}, false
}

// CreditsOK reports whether the billing gate lets the account call models.
// The gate is off unless BlockOnNoCredits is set; when on, a missing (nil)
// or non-positive balance blocks.
func (c *Catalog) CreditsOK(p tenant.Plan) bool {
	if !c.blockNoCredit {
		return true
	}
	return p.Balance != nil && *p.Balance > 0
}
