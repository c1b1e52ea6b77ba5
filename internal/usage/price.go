package usage

import (
	"sort"
	"strings"

	"github.com/tenantgate/tenantgate/internal/config"
)

// Price is the credit cost per million tokens of a model; config
// validates it (usage.credits.prices).
type Price = config.Price

// PriceTable maps a model id or ARN (as called, else as resolved) to its
// price. A key ending in "*" is a prefix.
type PriceTable map[string]Price

// Lookup returns the price of a model: an exact key first, then the
// longest matching prefix key.
func (t PriceTable) Lookup(model string) (Price, bool) {
	if p, ok := t[model]; ok {
		return p, true
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		if strings.HasSuffix(k, "*") && strings.HasPrefix(model, strings.TrimSuffix(k, "*")) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return Price{}, false
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	return t[keys[0]], true
}

// Cost returns the credits a record costs, and whether its model (as
// called, else as resolved) has a price.
func (t PriceTable) Cost(r Record) (float64, bool) {
	p, ok := t.Lookup(r.Model)
	if !ok {
		p, ok = t.Lookup(r.ResolvedModel)
	}
	if !ok {
		return 0, false
	}
	c := (float64(r.Input)*p.Input + float64(r.Output)*p.Output + float64(r.CacheRead)*p.CacheRead + float64(r.CacheWrite)*p.CacheWrite) / 1e6
	return c, true
}
