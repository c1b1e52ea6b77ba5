package extproc

import (
	"context"
	"slices"
	"strings"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/config"
)

// BedrockHeaderPolicy says which x-amzn-bedrock-* request headers (service
// tier, performance configuration, guardrail, trace, ...) callers of a plan
// tier may have signed and sent to Bedrock, and whether a request carrying
// another one is refused or forwarded without it. *plan.Catalog implements
// it from the plans configuration.
type BedrockHeaderPolicy interface {
	BedrockHeaderAllowed(tier, name string) bool
	RejectUnlistedBedrockHeaders() bool
}

// noBedrockHeaders allows none and strips them: the policy of a Server built
// without one.
type noBedrockHeaders struct{}

func (noBedrockHeaders) BedrockHeaderAllowed(_, name string) bool {
	return !strings.HasPrefix(toLower(name), config.BedrockHeaderPrefix)
}

func (noBedrockHeaders) RejectUnlistedBedrockHeaders() bool { return false }

// knownBedrockHeaders are the request headers of the Bedrock runtime API
// (InvokeModel, InvokeModelWithResponseStream); they label the metric, any
// other name counts as "other" so that callers cannot grow its label set.
var knownBedrockHeaders = []string{
	"x-amzn-bedrock-accept",
	"x-amzn-bedrock-trace",
	"x-amzn-bedrock-guardrailidentifier",
	"x-amzn-bedrock-guardrailversion",
	"x-amzn-bedrock-performanceconfig-latency",
	"x-amzn-bedrock-service-tier",
	"x-amzn-bedrock-request-metadata",
	"x-amzn-bedrock-projectidentifier",
}

func headerLabel(name string) string {
	if slices.Contains(knownBedrockHeaders, name) {
		return name
	}
	return "other"
}

// screenBedrockHeaders returns the x-amzn-bedrock-* headers in hdrs (lower-
// case names) that callers of tier may not send, sorted, to be removed
// before signing; or, when the policy says so, a 400 rejection. Each one is
// counted by header name and action, never by account.
func (s *Server) screenBedrockHeaders(ctx context.Context, tier string, hdrs map[string][]string) ([]string, *reject) {
	var unlisted []string
	for name := range hdrs {
		if strings.HasPrefix(name, config.BedrockHeaderPrefix) && !s.bedrockHeaders.BedrockHeaderAllowed(tier, name) {
			unlisted = append(unlisted, name)
		}
	}
	if len(unlisted) == 0 {
		return nil, nil
	}
	slices.Sort(unlisted)
	action := "stripped"
	if s.bedrockHeaders.RejectUnlistedBedrockHeaders() {
		action = "rejected"
	}
	for _, name := range unlisted {
		s.headerDrops.WithLabelValues(headerLabel(name), action).Inc()
	}
	if action == "rejected" {
		// Only known header names are echoed; any other is named by its prefix.
		name := headerLabel(unlisted[0])
		if name == "other" {
			name = config.BedrockHeaderPrefix + "*"
		}
		return nil, newReject(apierror.BedrockHeaderNotAllowed, name)
	}
	s.log.DebugContext(ctx, "x-amzn-bedrock-* headers not allowed for the plan removed", "tier", tier, "count", len(unlisted))
	return unlisted, nil
}
