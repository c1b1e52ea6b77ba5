package extauthz

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/plan"
)

// Explanation is one ext_authz decision without the Envoy response, for
// tenantgate explain. It holds no credential.
type Explanation struct {
	// Credential is the kind that decided (jwt, api_key, query_token,
	// service_role, service_api_key, mtls, none).
	Credential string `json:"credential"`
	// Issuer is the verified JWT issuer ("" for other credentials).
	Issuer string `json:"issuer,omitempty"`
	// APIKeyID is the api_keys.key_id of an API key.
	APIKeyID string `json:"api_key_id,omitempty"`
	// Identity is what ext_authz hands ext_proc when Allowed (as far as the
	// decision got otherwise).
	Identity identity.Identity `json:"identity"`
	// Model is the model the path names ("" for none).
	Model string `json:"model,omitempty"`
	// Rule is the plan rule that allows Model (nil when none did or no
	// model is named).
	Rule *plan.Rule `json:"plan_rule,omitempty"`
	// Allowed, or refused with Status and Code (extauthz Code* constants).
	Allowed bool   `json:"allowed"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Explain runs the decision Check runs for a request with these method,
// path and headers (lower- or mixed-case names) and reports it instead of
// answering Envoy. Nothing is logged or counted.
func (s *Server) Explain(ctx context.Context, method, path string, headers map[string]string) Explanation {
	hm := &corev3.HeaderMap{}
	for k, v := range headers {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	r := newRequest(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, HeaderMap: hm},
	}}})
	o := s.decide(ctx, r)
	e := Explanation{Credential: o.credential, Issuer: o.issuer, APIKeyID: o.keyID, Identity: o.id, Model: o.model,
		Allowed: o.deny == nil, Status: 200, Code: codeOK}
	if o.model != "" && o.id.Tier != "" {
		if rule, ok := s.plans.ModelRule(o.id.Tier, o.model); ok {
			e.Rule = &rule
		}
	}
	if o.deny != nil {
		e.Status, e.Code, e.Message = o.deny.Status, string(o.deny.Code), o.deny.Text
	}
	return e
}
