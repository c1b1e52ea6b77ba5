// Package extauthz owns tenantgate's Envoy external authorization server
// (envoy.service.auth.v3.Authorization): it verifies the caller's credential,
// resolves the tenant account, reads its plan tier, decides enterprise status
// and model access, and hands Envoy the verified identity as overwriting
// request headers and ext_authz dynamic metadata.
//
// Data flows one way: credential → identity → tenant → plan → decision.
// Every refusal is an HTTP answer rendered from the internal/apierror
// catalogue (AWS error type plus stable tenantgate code); the gRPC call
// itself succeeds.
package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/jwtverify"
	"github.com/tenantgate/tenantgate/internal/plan"
	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// TokenVerifier verifies user JWTs. Errors wrap jwtverify.ErrInvalidToken,
// jwtverify.ErrAnonymous or jwtverify.ErrUnavailable; anything else counts
// as unavailable.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (jwtverify.Claims, error)
}

// KeyAuthenticator authenticates a platform API key header value
// (pk_...:sk_...). Errors wrap the apikey sentinels; anything else counts as
// unavailable.
type KeyAuthenticator interface {
	Authenticate(ctx context.Context, header string) (tenant.APIKey, error)
}

// Directory reads accounts, memberships and plans. tenant.ErrNotFound is the
// only error that is not "unavailable".
type Directory interface {
	// PersonalAccount returns the user's personal account (tenant.ErrNotFound if none).
	PersonalAccount(ctx context.Context, userID string) (tenant.Account, error)
	// Account returns an account by id (tenant.ErrNotFound if none).
	Account(ctx context.Context, accountID string) (tenant.Account, error)
	// Membership returns the user's role in the account (tenant.ErrNotFound: not a member).
	Membership(ctx context.Context, accountID, userID string) (tenant.Role, error)
	// Plan returns the account's plan; a missing row is Plan{Tier: tenant.NoTier}, nil.
	Plan(ctx context.Context, accountID string) (tenant.Plan, error)
}

// Options configure a Server.
type Options struct {
	Auth    config.Auth
	Plans   config.Plans
	Service config.Service
	// Logger receives one record per decision (default: discard).
	Logger *slog.Logger
	// Registerer receives the server's collectors (default: a private registry).
	Registerer prometheus.Registerer
	// Getenv resolves Service.APIKeysEnv (default: no environment).
	Getenv func(string) string
}

// Server implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	auth     config.Auth
	plans    *plan.Catalog
	verifier TokenVerifier
	keys     KeyAuthenticator
	dir      Directory
	svc      *services
	log      *slog.Logger
	m        *metrics
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New builds a Server. keys may be nil only when API keys are off.
func New(opts Options, verifier TokenVerifier, keys KeyAuthenticator, dir Directory) (*Server, error) {
	if verifier == nil {
		return nil, errors.New("extauthz: a token verifier is required")
	}
	if dir == nil {
		return nil, errors.New("extauthz: a directory is required")
	}
	if opts.Auth.APIKeys.On() && keys == nil {
		return nil, errors.New("extauthz: API keys are on but no key authenticator was given")
	}
	if len(opts.Auth.CredentialOrder) == 0 {
		return nil, errors.New("extauthz: auth.credential_order is empty (configuration defaults not applied?)")
	}
	if opts.Auth.AccountHeader == "" {
		opts.Auth.AccountHeader = identity.HeaderAccountID
	}
	if opts.Auth.QueryToken.Enabled && opts.Auth.QueryToken.Param == "" {
		return nil, errors.New("extauthz: query token enabled without a parameter name")
	}
	if opts.Auth.APIKeys.On() && opts.Auth.APIKeys.Header == "" {
		return nil, errors.New("extauthz: API keys are on without a header name")
	}
	cat, err := plan.New(opts.Plans)
	if err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	svc, err := newServices(opts.Service, opts.Auth, opts.Getenv)
	if err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{
		auth: opts.Auth, plans: cat, verifier: verifier, keys: keys, dir: dir,
		svc: svc, log: log, m: m,
	}, nil
}

// Register registers the server on g as the Envoy Authorization service.
func (s *Server) Register(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
}

// outcome is what one decision produced, for the response, logs and metrics.
type outcome struct {
	id         identity.Identity
	deny       *denial
	credential string // credential kind for metrics ("none" if absent)
	service    string // service principal name, "" for users
	model      string
	issuer     string // verified JWT issuer, for explain
	keyID      string // API key id, for explain
}

// Check decides one request. It always returns a CheckResponse and a nil
// error; refusals are carried in the response.
func (s *Server) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	r := newRequest(cr)
	o := s.decide(ctx, r)

	var removeQuery, removeHeaders []string
	// The query token is stripped whenever the parameter is present, so a
	// token never travels upstream, whichever credential won.
	if s.auth.QueryToken.Enabled && scanQuery(r.path, s.auth.QueryToken.Param).present {
		removeQuery = []string{s.auth.QueryToken.Param}
	}
	removeHeaders = s.svc.headersToRemove(r)

	var resp *authv3.CheckResponse
	code, result := codeOK, "allowed"
	if o.deny != nil {
		resp = o.deny.response()
		code, result = string(o.deny.Code), "denied"
		if o.deny.Status == 503 {
			result = "unavailable"
		}
	} else {
		resp = okResponse(o.id, removeHeaders, removeQuery)
	}
	elapsed := time.Since(start)
	s.m.decisions.WithLabelValues(code, o.credential).Inc()
	s.m.latency.WithLabelValues(result).Observe(elapsed.Seconds())
	if o.service != "" {
		s.m.service.WithLabelValues(o.service, code).Inc()
	}
	s.logDecision(ctx, r, o, code, elapsed)
	return resp, nil
}

func (s *Server) logDecision(ctx context.Context, r request, o outcome, code string, elapsed time.Duration) {
	attrs := []slog.Attr{
		slog.String("request_id", r.requestID),
		slog.String("code", code),
		slog.String("credential", o.credential),
		slog.String("account_id", o.id.AccountID),
		slog.String("user_id", o.id.UserID),
		slog.Duration("duration", elapsed),
	}
	if o.model != "" {
		attrs = append(attrs, slog.String("model", o.model))
	}
	level := slog.LevelInfo
	if o.deny != nil {
		if o.deny.err != nil {
			attrs = append(attrs, slog.String("reason", o.deny.err.Error()))
		}
		if o.deny.Status == 503 {
			level = slog.LevelWarn
		}
	}
	if o.service != "" {
		attrs = append(attrs, slog.Bool("audit", true), slog.String("principal", o.service))
	}
	s.log.LogAttrs(ctx, level, "ext_authz decision", attrs...)
}

// decide runs the one-way flow: credential → identity → tenant → plan.
func (s *Server) decide(ctx context.Context, r request) outcome {
	if s.auth.QueryToken.Enabled && scanQuery(r.path, s.auth.QueryToken.Param).disguised {
		// Envoy removes the token parameter by its raw name only; a token
		// under another spelling would be forwarded upstream.
		return outcome{credential: credentialQueryToken, deny: deny(apierror.EncodedQueryToken, s.auth.QueryToken.Param)}
	}
	cred, ok := findCredential(s.auth, r)
	if ok && cred.kind != config.CredentialAPIKey && s.svc.isServiceRoleToken(cred.value) {
		// A Supabase service_role key in the bearer slot is a service
		// credential, never a user one.
		if cred.kind != config.CredentialBearer || !s.svc.serviceRoleOn() {
			return outcome{credential: credentialServiceRole, deny: deny(apierror.InvalidToken).
				withErr(errors.New("service_role token refused: service_role is off or the token is not in the bearer slot"))}
		}
		return s.decideServiceRole(ctx, r, cred.value)
	}
	if !ok {
		if o, handled := s.decideService(ctx, r); handled {
			return o
		}
		return outcome{credential: "none", deny: deny(apierror.MissingCredential)}
	}
	var o outcome
	switch cred.kind {
	case config.CredentialAPIKey:
		o = s.identifyAPIKey(ctx, r, cred.value)
	default:
		o = s.identifyJWT(ctx, r, cred)
	}
	if o.deny != nil {
		return o
	}
	return s.authorize(ctx, r, o)
}

// Credential values recorded in metadata and metrics.
const (
	credentialJWT        = "jwt"
	credentialAPIKey     = "api_key"
	credentialQueryToken = "query_token"
)

func (s *Server) identifyAPIKey(ctx context.Context, r request, header string) outcome {
	o := outcome{credential: credentialAPIKey}
	key, err := s.keys.Authenticate(ctx, header)
	switch {
	case err == nil:
	case errors.Is(err, apikey.ErrRevoked):
		o.deny = deny(apierror.APIKeyRevoked)
		return o
	case errors.Is(err, apikey.ErrExpired):
		o.deny = deny(apierror.APIKeyExpired)
		return o
	case errors.Is(err, apikey.ErrMalformed), errors.Is(err, apikey.ErrInvalid):
		o.deny = deny(apierror.InvalidAPIKey)
		return o
	default:
		o.deny = unavailable(fmt.Errorf("authenticate api key: %w", err))
		return o
	}
	if key.AccountID == "" {
		o.deny = unavailable(errors.New("authenticate api key: key has no account"))
		return o
	}
	// A key is bound to its account: naming another one is refused.
	if v, present := r.header(s.auth.AccountHeader); present {
		acct, ok := validate.NormalizeUUID(v)
		if !ok {
			o.deny = deny(apierror.InvalidAccountID)
			return o
		}
		if !strings.EqualFold(acct, key.AccountID) {
			o.deny = deny(apierror.NotAMember).withErr(errors.New("the API key belongs to another account"))
			return o
		}
	}
	acct, err := s.dir.Account(ctx, key.AccountID)
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		o.deny = deny(apierror.AccountNotFound).withErr(errors.New("the API key's account does not exist"))
		return o
	case err != nil:
		o.deny = unavailable(fmt.Errorf("look up api key account: %w", err))
		return o
	}
	o.keyID = key.KeyID
	o.id = identity.Identity{
		AccountID:  acct.ID,
		UserID:     acct.PrimaryOwnerUserID,
		Role:       string(tenant.RoleOwner),
		Principal:  identity.PrincipalUser,
		Credential: credentialAPIKey,
		APIKeyID:   key.KeyID,
	}
	if o.id.AccountID == "" {
		o.id.AccountID = key.AccountID
	}
	return o
}

func (s *Server) identifyJWT(ctx context.Context, r request, cred credential) outcome {
	o := outcome{credential: credentialJWT}
	if cred.kind == config.CredentialQueryToken {
		o.credential = credentialQueryToken
	}
	claims, err := s.verifier.Verify(ctx, cred.value)
	var expired *jwtverify.ExpiredError
	switch {
	case err == nil:
	case errors.As(err, &expired):
		o.deny = deny(apierror.TokenExpired, expired.ExpiresAt.UTC().Format(time.RFC3339)).withErr(err)
		return o
	case errors.Is(err, jwtverify.ErrAnonymous):
		// A valid token of a Supabase anonymous user: known, but refused
		// unless the issuer sets allow_anonymous.
		o.deny = deny(apierror.AnonymousUser)
		return o
	case errors.Is(err, jwtverify.ErrInvalidToken):
		o.deny = deny(apierror.InvalidToken).withErr(err)
		return o
	default: // jwtverify.ErrUnavailable or anything unexpected
		o.deny = unavailable(fmt.Errorf("verify token: %w", err))
		return o
	}
	switch {
	case claims.Subject == "":
		o.deny = deny(apierror.InvalidToken).withErr(errors.New("the token names no user"))
		return o
	case claims.Role == "service_role" || claims.Role == "anon":
		o.deny = deny(apierror.InvalidToken).withErr(fmt.Errorf("the token's role %q is not a user role", claims.Role))
		return o
	}
	user := claims.Subject
	o.issuer = claims.Issuer
	o.id = identity.Identity{UserID: user, Principal: identity.PrincipalUser, Credential: o.credential}
	if v, present := r.header(s.auth.AccountHeader); present {
		acct, ok := validate.NormalizeUUID(v)
		if !ok {
			o.deny = deny(apierror.InvalidAccountID)
			return o
		}
		role, err := s.dir.Membership(ctx, acct, user)
		switch {
		case errors.Is(err, tenant.ErrNotFound):
			o.deny = deny(apierror.NotAMember)
			return o
		case err != nil:
			o.deny = unavailable(fmt.Errorf("look up membership: %w", err))
			return o
		}
		if role != tenant.RoleOwner && role != tenant.RoleMember {
			o.deny = unavailable(fmt.Errorf("look up membership: unknown role %q", role))
			return o
		}
		o.id.AccountID, o.id.Role = acct, string(role)
		return o
	}
	acct, err := s.dir.PersonalAccount(ctx, user)
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		o.deny = deny(apierror.NoPersonalAccount)
		return o
	case err != nil:
		o.deny = unavailable(fmt.Errorf("look up personal account: %w", err))
		return o
	}
	if acct.ID == "" {
		o.deny = unavailable(errors.New("look up personal account: empty account id"))
		return o
	}
	o.id.AccountID, o.id.Role = acct.ID, string(tenant.RoleOwner)
	return o
}

// authorize applies the plan to an identified tenant: tier (unknown tiers
// are refused), enterprise status, model access and the credit gate.
func (s *Server) authorize(ctx context.Context, r request, o outcome) outcome {
	p, err := s.dir.Plan(ctx, o.id.AccountID)
	if err != nil {
		o.deny = unavailable(fmt.Errorf("look up plan: %w", err))
		return o
	}
	tier := p.Tier
	if tier == "" {
		tier = tenant.NoTier
	}
	o.id.Tier = tier
	o.id.Enterprise = s.plans.IsEnterprise(tier)
	// A tier the configuration does not list (or an account without a plan
	// row) gets nothing: not a default, not the async or listing operations.
	if !s.plans.Known(tier) {
		o.deny = deny(apierror.UnknownTier)
		return o
	}

	// Unsupported paths are not refused here: ext_proc answers them.
	br, err := bedrockpath.Parse(r.method, r.path)
	if err != nil {
		return o
	}
	o.model = br.ModelID
	if br.ModelID != "" && !s.plans.ModelAllowed(tier, br.ModelID) {
		o.deny = deny(apierror.ModelNotAllowed)
		return o
	}
	// Control-plane reads (model and profile metadata) are free.
	if ((br.ModelID != "" && !br.Op.ControlPlane()) || br.Op == bedrockpath.StartAsyncInvoke) && !s.plans.CreditsOK(p) {
		o.deny = deny(apierror.InsufficientCredits)
		return o
	}
	return o
}
