package extauthz

import (
	"testing"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/config"
)

// TestCheckControlPlane: the control-plane Get calls are checked against the
// plan like the model they name (without its geography prefix); listings
// and metadata reads are free of the credit gate.
func TestCheckControlPlane(t *testing.T) {
	const (
		getHaikuProfile  = "/inference-profiles/eu.anthropic.claude-3-haiku-20240307-v1%3A0"
		getSonnetProfile = "/inference-profiles/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0"
		getSonnetModel   = "/foundation-models/anthropic.claude-3-5-sonnet-20240620-v1%3A0"
	)
	creditsOn := func(c *config.Config) { c.Plans.BlockOnNoCredits = true }
	cases := []checkCase{
		{name: "list profiles", method: "GET", path: "/inference-profiles", headers: bearer("tok-a"), want: allowed(acctA, userA, "tier_2_20", "owner", false, "jwt")},
		{name: "list foundation models", method: "GET", path: "/foundation-models?byProvider=Anthropic", headers: bearer("tok-a"), want: allowed(acctA, userA, "tier_2_20", "owner", false, "jwt")},
		{name: "get allowed model's profile", method: "GET", path: getHaikuProfile, headers: bearer("tok-a"), want: allowed(acctA, userA, "tier_2_20", "owner", false, "jwt")},
		{name: "get profile of a model outside the plan", method: "GET", path: getSonnetProfile, headers: bearer("tok-a"), want: denied(403, apierror.ModelNotAllowed)},
		{name: "get foundation model outside the plan", method: "GET", path: getSonnetModel, headers: bearer("tok-a"), want: denied(403, apierror.ModelNotAllowed)},
		{name: "enterprise gets default models", method: "GET", path: getSonnetModel, headers: with(bearer("tok-a"), "x-account-id", acctTeam), want: allowed(acctTeam, userA, "tier_200_1000", "member", true, "jwt")},
		{name: "get is free of the credit gate", mutate: creditsOn, method: "GET", path: getHaikuProfile,
			headers: with(bearer("tok-a"), "x-account-id", acctBroke), want: allowed(acctBroke, userA, "tier_2_20", "member", false, "jwt")},
		{name: "unauthenticated", method: "GET", path: "/inference-profiles", want: denied(401, apierror.MissingCredential)},
	}
	runCases(t, cases, nil)
}
