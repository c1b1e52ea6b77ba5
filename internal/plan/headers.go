package plan

import (
	"fmt"
	"strings"

	"github.com/tenantgate/tenantgate/internal/config"
)

// bedrockHeaderRules are the per-tier allowlists of x-amzn-bedrock-* request
// headers (names lower-cased; "*" allows every one).
type bedrockHeaderRules struct {
	tiers    map[string]map[string]bool
	defaults map[string]bool
	reject   bool
}

// newBedrockHeaderRules checks every name, so that a typo fails at start
// rather than silently stripping a header later.
func newBedrockHeaderRules(cfg config.Plans) (bedrockHeaderRules, error) {
	check := func(where string, names []string) error {
		for _, n := range names {
			if !config.ValidBedrockHeaderName(n) {
				return fmt.Errorf("plan: %s: %q is not \"*\" or an %s* header name", where, n, config.BedrockHeaderPrefix)
			}
		}
		return nil
	}
	if err := check("default bedrock headers", cfg.DefaultBedrockHeaders); err != nil {
		return bedrockHeaderRules{}, err
	}
	set := func(names []string) map[string]bool {
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[strings.ToLower(n)] = true
		}
		return m
	}
	r := bedrockHeaderRules{
		tiers:    make(map[string]map[string]bool, len(cfg.BedrockHeaders)),
		defaults: set(cfg.DefaultBedrockHeaders),
		reject:   cfg.UnlistedBedrockHeaders == config.UnlistedBedrockHeadersReject,
	}
	for tier, names := range cfg.BedrockHeaders {
		if err := check("tier "+tier+" bedrock headers", names); err != nil {
			return bedrockHeaderRules{}, err
		}
		r.tiers[tier] = set(names)
	}
	return r, nil
}

// BedrockHeaderAllowed reports whether callers of tier may send the request
// header name (any case) to Bedrock. Headers outside x-amzn-bedrock-* are
// not this rule's business and are allowed. The tier's own list is used when
// configured (even if empty, which allows none), otherwise the default list.
func (c *Catalog) BedrockHeaderAllowed(tier, name string) bool {
	n := strings.ToLower(name)
	if !strings.HasPrefix(n, config.BedrockHeaderPrefix) {
		return true
	}
	allowed, ok := c.headers.tiers[tier]
	if !ok {
		allowed = c.headers.defaults
	}
	return allowed["*"] || allowed[n]
}

// RejectUnlistedBedrockHeaders reports whether a request carrying an
// x-amzn-bedrock-* header its tier does not allow is refused, rather than
// forwarded without the header.
func (c *Catalog) RejectUnlistedBedrockHeaders() bool {
	return c.headers.reject
}
