package extproc

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/logging"
	"github.com/tenantgate/tenantgate/internal/sigv4sign"
	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// Identity kinds: whose AWS credentials sign a request.
const (
	KindTenant   = "tenant"
	KindPlatform = "platform"
	kindNone     = "none"
)

// streamState carries one request from its headers to its body.
type streamState struct {
	// requestID is Envoy's x-request-id of the stream's request: every log
	// line of the stream carries it (logging.WithRequestID).
	requestID string
	pending   *pending
	done      bool
	response  responseState
	// signed is the request just signed, whose usage metadata the reply
	// carries (usage.go).
	signed *pending
}

// pending is a request whose headers were accepted and whose body is awaited.
type pending struct {
	method  string
	path    string
	headers map[string][]string
	op      bedrockpath.Request
	tier    string
	choice  choice
	body    []byte
	start   time.Time
	// unlisted are x-amzn-bedrock-* headers the plan does not allow:
	// removed, never signed.
	unlisted []string
}

// choice is the AWS identity and region chosen for a request.
type choice struct {
	kind    string
	region  string
	creds   aws.Credentials
	account string
	// awsAccount is the signer's AWS account id when known.
	awsAccount string
	// profiles are the tenant's application inference profiles by model
	// id (its route's inference_profiles).
	profiles map[string]string
}

// reject is a request refused with an immediate response rendered from the
// apierror catalogue.
type reject = apierror.Error

// reasonAsyncBody is the bad_request reason of a StartAsyncInvoke body
// without one string modelId.
const reasonAsyncBody = "StartAsyncInvoke needs a JSON object body with one string modelId"

// newReject refuses with code's catalogue entry; args are the non-secret
// values its message formats.
func newReject(code apierror.Code, args ...any) *reject {
	return apierror.New(code, args...)
}

// bufferedMode is the filter's configured mode with buffered request body.
// Request trailers are sent too: a request with trailers must reach
// tenantgate (to be refused) instead of going on unsigned.
var bufferedMode = &filterv3.ProcessingMode{
	RequestHeaderMode:   filterv3.ProcessingMode_SEND,
	ResponseHeaderMode:  filterv3.ProcessingMode_SKIP,
	RequestBodyMode:     filterv3.ProcessingMode_BUFFERED,
	ResponseBodyMode:    filterv3.ProcessingMode_NONE,
	RequestTrailerMode:  filterv3.ProcessingMode_SEND,
	ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
}

func (s *Server) handle(ctx context.Context, st *streamState, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if h := req.GetRequestHeaders(); h != nil && st.requestID == "" {
		st.requestID = requestID(h.GetHeaders())
	}
	ctx = logging.WithRequestID(ctx, st.requestID)
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return watchResponses(withUsageMetadata(st, s.onHeaders(ctx, st, req, r.RequestHeaders)))
	case *extprocv3.ProcessingRequest_RequestBody:
		return withUsageMetadata(st, s.onBody(ctx, st, r.RequestBody))
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return s.onTrailers(ctx, st)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return s.onResponseHeaders(st, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return s.onResponseBody(ctx, st, r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	default:
		st.done = true
		return s.immediate(ctx, newReject(apierror.Internal), kindNone, "")
	}
}

func (s *Server) onHeaders(ctx context.Context, st *streamState, req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	start := s.now()
	hdrs := headerMap(h.GetHeaders())
	first := func(name string) string {
		if v := hdrs[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	fail := func(r *reject, kind, region string) *extprocv3.ProcessingResponse {
		st.done = true
		return s.immediate(ctx, r, kind, region)
	}

	id, err := s.identity(req, first)
	if err != nil {
		return fail(newReject(apierror.NoTenant), kindNone, "")
	}
	method, path := first(":method"), first(":path")
	op, err := bedrockpath.Parse(method, path)
	if err != nil {
		return fail(newReject(apierror.UnsupportedOperation), kindNone, "")
	}
	if op.Op == bedrockpath.InvokeModelWithBidirectionalStream {
		return fail(newReject(apierror.NotImplemented), kindNone, "")
	}
	if cl := first("content-length"); cl != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64)
		if err != nil || n < 0 {
			return fail(newReject(apierror.BadRequest, "invalid content-length"), kindNone, "")
		}
		if n > s.cfg.MaxBodyBytes {
			return fail(newReject(apierror.BodyTooLarge, s.cfg.MaxBodyBytes), kindNone, "")
		}
	}
	if rej := s.asyncRule(op.Op, ""); rej != nil {
		return fail(rej, kindNone, "")
	}
	unlisted, rej := s.screenBedrockHeaders(ctx, id.Tier, hdrs)
	if rej != nil {
		return fail(rej, kindNone, "")
	}
	ch, rej := s.choose(ctx, id)
	if rej != nil {
		return fail(rej, ch.kind, ch.region)
	}
	if rej := s.asyncRule(op.Op, ch.kind); rej != nil {
		return fail(rej, ch.kind, ch.region)
	}
	p := &pending{method: method, path: path, headers: hdrs, op: op, tier: id.Tier, choice: ch, start: start, unlisted: unlisted}
	if op.Op == bedrockpath.StartAsyncInvoke && h.GetEndOfStream() {
		return fail(newReject(apierror.BadRequest, reasonAsyncBody), ch.kind, ch.region)
	}
	if rej := s.prepare(p); rej != nil {
		return fail(rej, ch.kind, ch.region)
	}
	if h.GetEndOfStream() {
		mut, rej := s.sign(ctx, p, sigv4sign.EmptyPayloadHash)
		if rej != nil {
			return fail(rej, ch.kind, ch.region)
		}
		st.done, st.signed = true, p
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocv3.HeadersResponse{Response: signedResponse(mut)},
		}}
	}
	st.pending = p
	// The caller's credentials are removed now, so that they cannot reach
	// AWS even if Envoy never delivers the body; the signature follows in
	// the reply to the buffered body.
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
			Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: s.removals(hdrs, nil, unlisted...)}},
		}},
		ModeOverride: bufferedMode,
	}
}

func (s *Server) onBody(ctx context.Context, st *streamState, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	p := st.pending
	if p == nil {
		st.done = true
		return s.immediate(ctx, newReject(apierror.Internal), kindNone, "")
	}
	if int64(len(p.body))+int64(len(b.GetBody())) > s.cfg.MaxBodyBytes {
		st.done, st.pending = true, nil
		return s.immediate(ctx, newReject(apierror.BodyTooLarge, s.cfg.MaxBodyBytes), p.choice.kind, p.choice.region)
	}
	if !b.GetEndOfStream() {
		// In BUFFERED mode (the only body mode tenantgate asks for) Envoy
		// sends the body without end_of_stream only when request trailers
		// follow. A CONTINUE here would let the request leave unsigned if
		// the trailers are not sent to tenantgate, so it is refused now.
		st.done, st.pending = true, nil
		return s.immediate(ctx, errTrailers(), p.choice.kind, p.choice.region)
	}
	if len(p.body) == 0 {
		// The whole buffered body arrives in this one message, which
		// nothing else holds: keep it rather than copy up to 10 MiB.
		p.body = b.GetBody()
	} else {
		p.body = append(p.body, b.GetBody()...)
	}
	st.pending = nil
	if rej := s.checkBodyModel(p); rej != nil {
		st.done = true
		return s.immediate(ctx, rej, p.choice.kind, p.choice.region)
	}
	mut, rej := s.sign(ctx, p, sigv4sign.PayloadHash(p.body))
	if rej != nil {
		st.done = true
		return s.immediate(ctx, rej, p.choice.kind, p.choice.region)
	}
	st.done, st.signed = true, p
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocv3.BodyResponse{Response: signedResponse(mut)},
	}}
}

// checkBodyModel applies the tier's model rules to a model named in the
// body: StartAsyncInvoke carries its modelId there, out of ext_authz's
// sight (which checks the path's model against the same plan rules).
func (s *Server) checkBodyModel(p *pending) *reject {
	if p.op.Op != bedrockpath.StartAsyncInvoke {
		return nil
	}
	model, err := bedrockpath.AsyncInvokeModelID(p.body)
	if err != nil {
		return newReject(apierror.BadRequest, reasonAsyncBody)
	}
	p.op.ModelID = model
	tier := p.tier
	if tier == "" {
		tier = tenant.NoTier
	}
	if !s.models.ModelAllowed(tier, model) {
		return newReject(apierror.ModelNotAllowed)
	}
	return s.placeBodyModel(p)
}

// asyncRule refuses async-invoke operations per extproc.async_invoke: deny
// refuses them all; tenant_only refuses them unless the signer (kind, once
// known; "" before routing) is the tenant's own role. On the shared
// platform identity, async jobs of every tenant would be listed, read and
// started under one account.
func (s *Server) asyncRule(op bedrockpath.Operation, kind string) *reject {
	if !op.Async() {
		return nil
	}
	if s.cfg.AsyncInvoke == config.AsyncInvokeDeny ||
		(kind != "" && s.cfg.AsyncInvoke != config.AsyncInvokeAllow && kind != KindTenant) {
		return errAsync()
	}
	return nil
}

func errAsync() *reject { return newReject(apierror.AsyncInvokeNotAllowed) }

// onTrailers refuses every request that carries trailers. Bedrock runtime
// requests have none, SigV4 does not cover them, and a TrailersResponse
// cannot set the request headers a signature needs: whether a body came
// first or not, nothing is signed and the request ends here.
func (s *Server) onTrailers(ctx context.Context, st *streamState) *extprocv3.ProcessingResponse {
	kind, region := kindNone, ""
	if p := st.pending; p != nil {
		kind, region = p.choice.kind, p.choice.region
	}
	st.done, st.pending = true, nil
	return s.immediate(ctx, errTrailers(), kind, region)
}

func errTrailers() *reject { return newReject(apierror.TrailersNotSupported) }

func (s *Server) identity(req *extprocv3.ProcessingRequest, get func(string) string) (identity.Identity, error) {
	if s.cfg.TenantSource == config.TenantFromHeaders {
		return identity.FromHeaders(get)
	}
	md := req.GetMetadataContext().GetFilterMetadata()[identity.MetadataNamespace]
	return identity.FromStruct(md)
}

// routing is whose AWS identity signs a request and where, decided before
// any credentials are fetched.
type routing struct {
	choice
	route tenant.Route // the tenant's row (KindTenant)
	// fallback is why an enterprise tenant is signed by the platform
	// (no_route, route_disabled); "" otherwise.
	fallback string
}

// decideRouting applies the routing rules to a verified tenant: platform
// for non-enterprise tenants; the tenant's enabled route with its region for
// enterprise tenants; without one, extproc.enterprise_without_route decides.
// It calls no AWS API; explain runs it as it is.
func (s *Server) decideRouting(ctx context.Context, id identity.Identity) (routing, *reject) {
	platform := routing{choice: choice{kind: KindPlatform, region: s.cfg.DefaultRegion, account: id.AccountID, awsAccount: s.cfg.PlatformAccountID}}
	if !id.Enterprise {
		return platform, nil
	}
	route, err := s.routes.Route(ctx, id.AccountID)
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		route = tenant.Route{}
	case err != nil:
		s.log.ErrorContext(ctx, "routing lookup failed", "account_id", id.AccountID, "error", err)
		return routing{choice: choice{kind: KindTenant, account: id.AccountID}}, newReject(apierror.Unavailable)
	}
	if !route.Enabled || route.RoleARN == "" {
		reason := "no_route"
		if route.RoleARN != "" {
			reason = "route_disabled"
		}
		if s.cfg.EnterpriseWithoutRoute != config.NoRoutePlatform {
			return routing{choice: choice{kind: kindNone, account: id.AccountID}, route: route, fallback: reason},
				newReject(apierror.NoTenantRoute)
		}
		platform.route, platform.fallback = route, reason
		return platform, nil
	}
	region := route.Region
	if region == "" {
		region = s.cfg.DefaultRegion
	}
	route.Tier = id.Tier
	rt := routing{choice: choice{kind: KindTenant, region: region, account: id.AccountID, awsAccount: validate.RoleAccount(route.RoleARN), profiles: route.InferenceProfiles}, route: route}
	if !config.ValidRegion(region) {
		// The region becomes part of the upstream host: never trust a
		// malformed one.
		s.log.ErrorContext(ctx, "routing row has an invalid region", "account_id", id.AccountID)
		rt.region = ""
		return rt, newReject(apierror.TenantCredentialsUnavailable)
	}
	return rt, nil
}

// choose picks whose credentials sign the request and in which region, and
// writes the audit line of an enterprise tenant's routing decision.
func (s *Server) choose(ctx context.Context, id identity.Identity) (ch choice, rej *reject) {
	rt, rej := s.decideRouting(ctx, id)
	if id.Enterprise {
		defer func() { s.auditRouting(ctx, rt, ch, rej) }()
	}
	if rej != nil {
		return rt.choice, rej
	}
	ch = rt.choice
	if ch.kind == KindPlatform {
		if rt.fallback != "" {
			s.fallbacks.WithLabelValues(rt.fallback).Inc()
			s.log.WarnContext(ctx, "enterprise tenant signed with platform credentials (extproc.enterprise_without_route: platform)",
				slog.String("account_id", id.AccountID), slog.String("reason", rt.fallback))
		}
		creds, err := s.platformCredentials(ctx, id, &ch)
		if err != nil {
			s.log.ErrorContext(ctx, "platform credentials unavailable", "account_id", id.AccountID, "error", err)
			return ch, newReject(apierror.PlatformCredentialsUnavailable)
		}
		ch.creds = creds
		return ch, nil
	}
	creds, err := s.creds.Credentials(ctx, rt.route, ch.region)
	if err != nil {
		if errors.Is(err, awscreds.ErrRoleDenied) {
			return ch, newReject(apierror.TenantRoleDenied)
		}
		s.log.WarnContext(ctx, "tenant credentials unavailable", "account_id", id.AccountID, "region", ch.region, "error", err)
		return ch, newReject(apierror.TenantCredentialsUnavailable)
	}
	ch.creds = creds
	return ch, nil
}

// platformCredentials returns the platform's credentials for id: with
// extproc.platform_role_arn a session of that role for id's account (whose
// AWS account then names ch's signer when platform_account_id is unset),
// otherwise the platform's base credentials.
func (s *Server) platformCredentials(ctx context.Context, id identity.Identity, ch *choice) (aws.Credentials, error) {
	role := s.cfg.PlatformRoleARN
	if role == "" {
		return s.platform.Retrieve(ctx)
	}
	if ch.awsAccount == "" {
		ch.awsAccount = validate.RoleAccount(role)
	}
	return s.sessions.PlatformCredentials(ctx, role, id.AccountID, id.Tier, ch.region)
}

// auditRouting writes the one audit line of an enterprise tenant's routing
// decision: the account, the AWS account id of the route's role, the region
// and the decision (tenant_role, platform_fallback or the refusal's code).
// Never the ExternalId or any credential.
func (s *Server) auditRouting(ctx context.Context, rt routing, ch choice, rej *reject) {
	decision := "tenant_role"
	switch {
	case rej != nil:
		decision = "refused:" + string(rej.Code)
	case ch.kind == KindPlatform:
		decision = "platform_fallback"
	}
	attrs := []slog.Attr{
		slog.Bool("audit", true),
		slog.String("account_id", rt.account),
		slog.String("role_aws_account_id", validate.RoleAccount(rt.route.RoleARN)),
		slog.String("region", ch.region),
		slog.String("decision", decision),
	}
	if rt.fallback != "" {
		attrs = append(attrs, slog.String("route", rt.fallback))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "enterprise routing decision", attrs...)
}

// sign signs p with payloadHash and returns the header mutation to apply.
func (s *Server) sign(ctx context.Context, p *pending, payloadHash string) (*extprocv3.HeaderMutation, *reject) {
	host := s.hostFor(p)
	set := map[string]bool{":authority": true, sigv4sign.HeaderAuthorization: true, sigv4sign.HeaderAmzDate: true}
	remove := s.removals(p.headers, set, p.unlisted...)
	removed := make(map[string]bool, len(remove))
	for _, r := range remove {
		removed[r] = true
	}
	signHeaders := make(map[string][]string)
	for k, v := range p.headers {
		if !removed[k] && !strings.HasPrefix(k, ":") {
			signHeaders[k] = v
		}
	}
	res, err := s.signer.Sign(ctx, p.choice.creds, p.choice.region, sigv4sign.Request{
		Method: p.method, Host: host, Path: p.path, Header: signHeaders, PayloadHash: payloadHash,
	}, s.now())
	s.signing.WithLabelValues(p.choice.kind).Observe(s.now().Sub(p.start).Seconds())
	if err != nil {
		s.log.WarnContext(ctx, "request cannot be signed", "account_id", p.choice.account, "operation", string(p.op.Op), "error", err)
		return nil, newReject(apierror.BadRequest, "it cannot be signed")
	}
	m := &extprocv3.HeaderMutation{}
	add := func(k, v string) {
		m.SetHeaders = append(m.SetHeaders, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	add(":authority", host)
	if p.path != first(p.headers, ":path") {
		add(":path", p.path)
	}
	add(sigv4sign.HeaderAuthorization, res.Authorization)
	add(sigv4sign.HeaderAmzDate, res.AmzDate)
	if res.SecurityToken != "" {
		add(sigv4sign.HeaderSecurityToken, res.SecurityToken)
	} else if _, ok := p.headers[sigv4sign.HeaderSecurityToken]; ok {
		remove = appendOnce(remove, sigv4sign.HeaderSecurityToken)
	}
	m.RemoveHeaders = remove
	s.requests.WithLabelValues("signed", p.choice.kind, p.choice.region).Inc()
	s.log.InfoContext(ctx, "bedrock request signed",
		slog.String("account_id", p.choice.account), slog.String("region", p.choice.region),
		slog.String("operation", string(p.op.Op)), slog.String("model", p.op.ModelID),
		slog.String("signer", p.choice.kind))
	return m, nil
}

// builtinStrip are caller headers never forwarded to AWS.
var builtinStrip = []string{"authorization", "x-api-key", "x-service-key", "cookie", "proxy-authorization"}

// removals lists the caller's headers to drop, except those in keep (which
// the mutation overwrites), plus extra (headers the plan does not allow).
func (s *Server) removals(hdrs map[string][]string, keep map[string]bool, extra ...string) []string {
	var out []string
	drop := func(name string) {
		if _, present := hdrs[name]; present && !keep[name] {
			out = appendOnce(out, name)
		}
	}
	for _, n := range extra {
		drop(n)
	}
	for _, n := range builtinStrip {
		drop(n)
	}
	for _, n := range s.strip {
		drop(n)
	}
	if !s.cfg.KeepIdentityHeaders {
		for _, n := range identity.Headers {
			drop(n)
		}
	}
	if _, ok := hdrs["host"]; ok {
		out = appendOnce(out, "host")
	}
	for name := range hdrs {
		if strings.HasPrefix(name, "x-amz-") || strings.HasPrefix(name, "x-tenantgate-") {
			drop(name)
		}
	}
	return out
}

func appendOnce(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

func signedResponse(m *extprocv3.HeaderMutation) *extprocv3.CommonResponse {
	return &extprocv3.CommonResponse{HeaderMutation: m, ClearRouteCache: true}
}

// immediate answers the client directly with the catalogued restJson1
// error.
func (s *Server) immediate(ctx context.Context, r *reject, kind, region string) *extprocv3.ProcessingResponse {
	s.requests.WithLabelValues(string(r.Code), kind, region).Inc()
	s.log.InfoContext(ctx, "bedrock request rejected", "status", r.Status, "error", string(r.Code), "signer", kind, "region", region)
	m := &extprocv3.HeaderMutation{}
	for _, h := range r.Headers() {
		m.SetHeaders = append(m.SetHeaders, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, RawValue: []byte(h.Value)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.Status)},
			Headers: m,
			Body:    r.Body(),
			Details: "tenantgate_" + string(r.Code),
		},
	}}
}

// headerMap returns Envoy's headers by lower-case name, values in order.
func headerMap(hm *corev3.HeaderMap) map[string][]string {
	out := make(map[string][]string)
	for _, h := range hm.GetHeaders() {
		v := string(h.GetRawValue())
		if len(h.GetRawValue()) == 0 {
			v = h.GetValue()
		}
		k := toLower(h.GetKey())
		out[k] = append(out[k], v)
	}
	return out
}

// requestID returns Envoy's x-request-id among hm ("" when absent).
func requestID(hm *corev3.HeaderMap) string {
	for _, h := range hm.GetHeaders() {
		if strings.EqualFold(h.GetKey(), "x-request-id") {
			if raw := h.GetRawValue(); len(raw) > 0 {
				return string(raw)
			}
			return h.GetValue()
		}
	}
	return ""
}

func first(hdrs map[string][]string, name string) string {
	if v := hdrs[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func toLower(s string) string { return strings.ToLower(s) }
