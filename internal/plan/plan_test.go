package plan

import (
	"math"
	"slices"
	"testing"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

func ptr(f float64) *float64 { return &f }

func mustNew(t *testing.T, cfg config.Plans) *Catalog {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestIsEnterprise(t *testing.T) {
	c := mustNew(t, config.Plans{EnterpriseTiers: []string{"tier_125_800", "tier_200_1000", "tier_150_1200"}})
	tests := []struct {
		tier string
		want bool
	}{
		{"tier_125_800", true},
		{"tier_200_1000", true},
		{"tier_150_1200", true},
		{"tier_2_20", false},
		{"free", false},
		{tenant.NoTier, false},
		{"", false},
		{"TIER_125_800", false},
		{"tier_125_800 ", false},
	}
	for _, tt := range tests {
		if got := c.IsEnterprise(tt.tier); got != tt.want {
			t.Errorf("IsEnterprise(%q) = %v, want %v", tt.tier, got, tt.want)
		}
	}
}

func TestModelAllowed(t *testing.T) {
	c := mustNew(t, config.Plans{
		Models: map[string][]string{
			"free":     {"amazon.nova-micro-*", "anthropic.claude-3-haiku-*"},
			"locked":   {},
			"arn_only": {"arn:aws:bedrock:*:*:inference-profile/us.anthropic.*"},
			"wildcard": {"*"},
			"exact":    {"meta.llama3-8b-instruct-v1:0"},
		},
		DefaultModels: []string{"anthropic.*", "amazon.*"},
	})
	arn := "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
	tests := []struct {
		name, tier, model string
		want              bool
	}{
		{"tier list match", "free", "amazon.nova-micro-v1:0", true},
		{"tier list second glob", "free", "anthropic.claude-3-haiku-20240307-v1:0", true},
		{"tier list miss", "free", "anthropic.claude-3-5-sonnet-20240620-v1:0", false},
		{"empty tier list allows nothing", "locked", "amazon.nova-micro-v1:0", false},
		{"unlisted tier uses defaults", "tier_2_20", "anthropic.claude-3-5-sonnet-20240620-v1:0", true},
		{"unlisted tier default miss", "tier_2_20", "meta.llama3-8b-instruct-v1:0", false},
		{"no tier uses defaults", tenant.NoTier, "amazon.titan-text-express-v1", true},
		{"arn glob", "arn_only", arn, true},
		{"arn glob does not match plain id", "arn_only", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", false},
		{"default star does not cross slash for ARNs", "tier_2_20", arn, false},
		{"bare star matches ARN", "wildcard", arn, true},
		{"bare star matches id", "wildcard", "x", true},
		{"exact match", "exact", "meta.llama3-8b-instruct-v1:0", true},
		{"exact miss by suffix", "exact", "meta.llama3-8b-instruct-v1:0x", false},
		{"empty model never allowed", "wildcard", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.ModelAllowed(tt.tier, tt.model); got != tt.want {
				t.Errorf("ModelAllowed(%q, %q) = %v, want %v", tt.tier, tt.model, got, tt.want)
			}
		})
	}
}

func TestModelAllowedConfigDefaults(t *testing.T) {
	cfg, err := config.Parse(nil, nil)
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	c := mustNew(t, cfg.Plans)
	// Nothing is listed by default, so every tier is unknown and refused.
	for _, tier := range []string{"tier_2_20", tenant.NoTier, "tier_200_1000", ""} {
		if c.Known(tier) {
			t.Errorf("default catalog knows tier %q", tier)
		}
		if c.ModelAllowed(tier, "anthropic.claude-3-haiku-20240307-v1:0") {
			t.Errorf("default catalog allowed a model id to tier %q", tier)
		}
		if c.ModelAllowed(tier, "arn:aws:bedrock:us-east-1:1:inference-profile/us.amazon.nova-pro-v1:0") {
			t.Errorf("default catalog allowed an ARN to tier %q", tier)
		}
	}
	if !c.IsEnterprise("tier_200_1000") || c.IsEnterprise("tier_2_20") {
		t.Error("default enterprise tiers wrong")
	}
	if !c.CreditsOK(tenant.Plan{}) {
		t.Error("billing gate is on by default")
	}
}

func TestCreditsOK(t *testing.T) {
	tests := []struct {
		name  string
		block bool
		bal   *float64
		want  bool
	}{
		{"gate off, nil balance", false, nil, true},
		{"gate off, negative", false, ptr(-5), true},
		{"gate on, nil balance", true, nil, false},
		{"gate on, zero", true, ptr(0), false},
		{"gate on, negative", true, ptr(-0.01), false},
		{"gate on, NaN", true, ptr(math.NaN()), false},
		{"gate on, positive", true, ptr(0.01), true},
		{"gate on, large", true, ptr(1e9), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, config.Plans{BlockOnNoCredits: tt.block})
			if got := c.CreditsOK(tenant.Plan{Tier: "tier_2_20", Balance: tt.bal}); got != tt.want {
				t.Errorf("CreditsOK = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadGlob(t *testing.T) {
	for _, cfg := range []config.Plans{
		{DefaultModels: []string{"["}},
		{Models: map[string][]string{"t": {"a[", "b"}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad glob", cfg)
		}
	}
}

func TestCatalogCopiesConfig(t *testing.T) {
	cfg := config.Plans{Models: map[string][]string{"t": {"a.*"}}, DefaultModels: []string{"b.*"}}
	c := mustNew(t, cfg)
	cfg.Models["t"][0] = "*"
	cfg.DefaultModels[0] = "*"
	if c.ModelAllowed("t", "z.model") || c.ModelAllowed("other", "z.model") {
		t.Error("catalog shares slices with the config")
	}
}

func TestKnown(t *testing.T) {
	listed := config.Plans{Models: map[string][]string{"free": {"amazon.*"}, "locked": {}}}
	withDefault := config.Plans{Models: listed.Models, DefaultModels: []string{"amazon.*"}}
	tests := []struct {
		name string
		cfg  config.Plans
		tier string
		want bool
	}{
		{"listed tier", listed, "free", true},
		{"listed with no models is known (allows nothing)", listed, "locked", true},
		{"unlisted tier", listed, "tier_2_20", false},
		{"account without plan row", listed, tenant.NoTier, false},
		{"empty tier", listed, "", false},
		{"case differs", listed, "FREE", false},
		{"explicit default_models covers unlisted tiers", withDefault, "tier_2_20", true},
		{"explicit default_models covers no plan row", withDefault, tenant.NoTier, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, tt.cfg)
			if got := c.Known(tt.tier); got != tt.want {
				t.Errorf("Known(%q) = %v, want %v", tt.tier, got, tt.want)
			}
			if !tt.want && c.ModelAllowed(tt.tier, "amazon.nova-micro-v1:0") {
				t.Errorf("unknown tier %q may call a model", tt.tier)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	c := mustNew(t, config.Plans{Models: map[string][]string{"free": {"amazon.*"}, "tier_200_1000": {"*"}}})
	got := c.Unknown([]string{"tier_2_20", "free", tenant.NoTier, "tier_2_20", "tier_200_1000", "legacy"})
	want := []string{"legacy", tenant.NoTier, "tier_2_20"}
	if !slices.Equal(got, want) {
		t.Errorf("Unknown = %q, want %q", got, want)
	}
	if got := c.Unknown([]string{"free"}); len(got) != 0 {
		t.Errorf("Unknown of listed tiers = %q, want none", got)
	}
	withDefault := mustNew(t, config.Plans{DefaultModels: []string{"amazon.*"}})
	if got := withDefault.Unknown([]string{"anything", tenant.NoTier}); len(got) != 0 {
		t.Errorf("with default_models every tier has rules; Unknown = %q", got)
	}
}
