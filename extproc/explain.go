package extproc

import (
	"context"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/store/validate"
)

// Explanation is ext_proc's routing of one request without credentials or
// a signature, for tenantgate explain.
type Explanation struct {
	// Operation is the Bedrock operation the path names.
	Operation string `json:"operation,omitempty"`
	// Kind is whose AWS identity would sign: tenant, platform or none.
	Kind string `json:"identity_kind"`
	// RoleARN and RoleAccountID are the enterprise route's role ("" when
	// none); RouteEnabled whether its row is enabled; Fallback why an
	// enterprise tenant is signed by the platform or refused (no_route,
	// route_disabled).
	RoleARN       string `json:"role_arn,omitempty"`
	RoleAccountID string `json:"role_aws_account_id,omitempty"`
	RouteEnabled  bool   `json:"route_enabled"`
	Fallback      string `json:"fallback,omitempty"`
	// Region and Host are where the request would be sent, and Path the
	// path signed (after a geography rewrite).
	Region string `json:"region,omitempty"`
	Host   string `json:"aws_host,omitempty"`
	Path   string `json:"path,omitempty"`
	// Allowed, or refused with Status and Code.
	Allowed bool   `json:"allowed"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Explain applies ext_proc's rules to a verified identity and a request
// line as onHeaders does (operation, async policy, routing, control-plane
// and geography rules) without fetching credentials or signing: no AWS API
// is called. Nothing is logged or counted.
func (s *Server) Explain(ctx context.Context, id identity.Identity, method, path string) Explanation {
	e := Explanation{Kind: kindNone, Status: 200, Code: "ok", Path: path}
	refuse := func(r *reject) Explanation {
		e.Allowed, e.Status, e.Code, e.Message = false, r.Status, string(r.Code), r.Text
		return e
	}
	op, err := bedrockpath.Parse(method, path)
	if err != nil {
		return refuse(newReject(apierror.UnsupportedOperation))
	}
	e.Operation = string(op.Op)
	if op.Op == bedrockpath.InvokeModelWithBidirectionalStream {
		return refuse(newReject(apierror.NotImplemented))
	}
	if rej := s.asyncRule(op.Op, ""); rej != nil {
		return refuse(rej)
	}
	rt, rej := s.decideRouting(ctx, id)
	e.Kind, e.Region, e.Fallback = rt.kind, rt.region, rt.fallback
	e.RoleARN, e.RoleAccountID, e.RouteEnabled = rt.route.RoleARN, validate.RoleAccount(rt.route.RoleARN), rt.route.Enabled
	if rej != nil {
		return refuse(rej)
	}
	if rej := s.asyncRule(op.Op, rt.kind); rej != nil {
		return refuse(rej)
	}
	p := &pending{method: method, path: path, op: op, tier: id.Tier, choice: rt.choice}
	if rej := s.prepare(p); rej != nil {
		return refuse(rej)
	}
	e.Region, e.Host, e.Path, e.Allowed = p.choice.region, s.hostFor(p), p.path, true
	return e
}
