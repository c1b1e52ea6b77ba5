package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/plan"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// TierLister lists the distinct plan tiers of the configured store
// (tenant.NoTier standing for accounts without a plan).
type TierLister func(ctx context.Context, cfg config.Store) ([]string, error)

// storeTiersTimeout bounds the whole store read of CheckTiers.
const storeTiersTimeout = 15 * time.Second

// StoreTiers is the TierLister that reads the configured store.
func StoreTiers(ctx context.Context, cfg config.Store) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTiersTimeout)
	defer cancel()
	return store.Tiers(ctx, cfg)
}

// CheckTiers returns one warning for every tier whose accounts the plan
// catalog refuses (403 unknown_tier): enterprise tiers of the configuration
// without model rules, and, when list is not nil, tiers found in the store.
func CheckTiers(ctx context.Context, cfg *config.Config, list TierLister) ([]string, error) {
	cat, err := plan.New(cfg.Plans)
	if err != nil {
		return nil, fmt.Errorf("check tiers: %w", err)
	}
	var warnings []string
	for _, t := range cat.Unknown(cfg.Plans.EnterpriseTiers) {
		warnings = append(warnings, fmt.Sprintf("enterprise tier %q is not listed in plans.models: its accounts are refused (403 unknown_tier)", t))
	}
	if list == nil {
		return warnings, nil
	}
	tiers, err := list(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("check tiers: list the %s store's tiers: %w", StoreKind(cfg.Store), err)
	}
	for _, t := range cat.Unknown(tiers) {
		if t == tenant.NoTier {
			warnings = append(warnings, fmt.Sprintf("tier %q (accounts without a credit_accounts row or tier) is not listed in plans.models: those accounts are refused (403 unknown_tier)", t))
			continue
		}
		warnings = append(warnings, fmt.Sprintf("tier %q is in the store but not listed in plans.models: its accounts are refused (403 unknown_tier)", t))
	}
	return warnings, nil
}

// warnUnlistedTiers logs, at start, which accounts the plan catalog will
// refuse: every account when plans.models lists no tier (and
// default_models is empty), and enterprise tiers without model rules. The
// store's own tiers are checked by check-config.
func (a *App) warnUnlistedTiers(ctx context.Context) {
	p := a.cfg.Plans
	if len(p.Models) == 0 && len(p.DefaultModels) == 0 {
		a.log.WarnContext(ctx, "plans.models lists no tier: every account is refused with 403 unknown_tier; list your tiers (see tenantgate check-config)")
		return
	}
	warnings, err := CheckTiers(ctx, a.cfg, nil)
	if err != nil {
		a.log.WarnContext(ctx, "plans: tier check failed", slog.String("error", err.Error()))
		return
	}
	for _, w := range warnings {
		a.log.WarnContext(ctx, "plans: "+w)
	}
}
