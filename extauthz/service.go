package extauthz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/servicetoken"
	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// Credential values of service callers (metadata "credential" and metrics).
const (
	credentialMTLS          = "mtls"
	credentialServiceRole   = "service_role"
	credentialServiceAPIKey = "service_api_key"
)

// RoleService is the x-account-role of service callers.
const RoleService = "service"

// services holds the trusted service principals. Service paths are used only
// when the request carries no user credential (API key, bearer user token or
// query token); a Supabase service_role key in the bearer slot is always a
// service credential.
type services struct {
	trusted       map[string]bool
	roleVerifier  *servicetoken.Verifier // nil: no issuer enables service_role; keys are refused
	rolePrincipal string
	keys          []serviceKey
	keyHeader     string
}

type serviceKey struct {
	name string
	sum  [sha256.Size]byte
}

func newServices(cfg config.Service, auth config.Auth, getenv func(string) string) (*services, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	s := &services{trusted: map[string]bool{}, rolePrincipal: cfg.ServiceRole.Principal, keyHeader: cfg.APIKeyHeader}
	if s.rolePrincipal == "" {
		s.rolePrincipal = "supabase-service-role"
	}
	if s.keyHeader == "" {
		s.keyHeader = "x-service-key"
	}
	for _, p := range cfg.TrustedPrincipals {
		if p == "" {
			return nil, errors.New("service: empty trusted principal")
		}
		s.trusted[p] = true
	}
	if cfg.ServiceRole.Enabled {
		return nil, fmt.Errorf("service: %s", config.ErrServiceRoleEnabledRemoved)
	}
	if slices.ContainsFunc(auth.Issuers, func(is config.Issuer) bool { return is.ServiceRole }) {
		v, err := servicetoken.New(auth.Issuers, auth.Leeway.D())
		if err != nil {
			return nil, fmt.Errorf("service: service_role: %w", err)
		}
		s.roleVerifier = v
	}
	keys := map[string]string{}
	for name, key := range cfg.APIKeys {
		keys[name] = key
	}
	for name, env := range cfg.APIKeysEnv {
		if v := getenv(env); v != "" {
			keys[name] = v
		} else if _, ok := keys[name]; !ok {
			return nil, fmt.Errorf("service: api key %q: environment variable %s is empty", name, env)
		}
	}
	names := make([]string, 0, len(keys))
	for name := range keys {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, " \t\r\n") {
			return nil, fmt.Errorf("service: invalid api key name %q", name)
		}
		if len(keys[name]) < 32 {
			return nil, fmt.Errorf("service: api key %q is shorter than 32 characters", name)
		}
		s.keys = append(s.keys, serviceKey{name: name, sum: sha256.Sum256([]byte(keys[name]))})
	}
	return s, nil
}

func (s *services) serviceRoleOn() bool { return s.roleVerifier != nil }

func (s *services) isServiceRoleToken(tok string) bool {
	return servicetoken.LooksLikeServiceRole(tok)
}

// matchKey returns the name of the service key equal to presented. Every
// configured key is compared, in constant time over hashes of equal length.
func (s *services) matchKey(presented string) (string, bool) {
	sum := sha256.Sum256([]byte(presented))
	found := ""
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
			found = k.name
		}
	}
	return found, found != ""
}

// headersToRemove strips the service key header so the secret never travels
// upstream.
func (s *services) headersToRemove(r request) []string {
	if len(s.keys) == 0 {
		return nil
	}
	if _, ok := r.header(s.keyHeader); ok {
		return []string{s.keyHeader}
	}
	return nil
}

// decideService handles requests without a user credential: a service API
// key, else a trusted mTLS principal. handled is false when neither applies,
// which leaves the request anonymous.
func (s *Server) decideService(ctx context.Context, r request) (outcome, bool) {
	if len(s.svc.keys) > 0 {
		if v, ok := r.header(s.svc.keyHeader); ok {
			name, ok := s.svc.matchKey(strings.TrimSpace(v))
			if !ok {
				return outcome{credential: credentialServiceAPIKey,
					deny: deny(apierror.InvalidServiceKey)}, true
			}
			return s.serviceAuthorize(ctx, r, name, credentialServiceAPIKey), true
		}
	}
	if r.principal != "" && s.svc.trusted[r.principal] {
		return s.serviceAuthorize(ctx, r, r.principal, credentialMTLS), true
	}
	return outcome{}, false
}

// decideServiceRole handles a Supabase service_role key in the bearer slot.
func (s *Server) decideServiceRole(ctx context.Context, r request, token string) outcome {
	if _, err := s.svc.roleVerifier.Verify(ctx, token); err != nil {
		o := outcome{credential: credentialServiceRole}
		if errors.Is(err, servicetoken.ErrInvalid) {
			o.deny = deny(apierror.InvalidToken).withErr(err)
		} else {
			o.deny = unavailable(fmt.Errorf("verify service token: %w", err))
		}
		return o
	}
	return s.serviceAuthorize(ctx, r, s.svc.rolePrincipal, credentialServiceRole)
}

// serviceAuthorize resolves the account a trusted service acts for and
// applies the same plan rules as for users.
func (s *Server) serviceAuthorize(ctx context.Context, r request, principal, cred string) outcome {
	o := outcome{credential: cred, service: principal}
	o.id = identity.Identity{
		UserID:     identity.ServiceUserPrefix + principal,
		Role:       RoleService,
		Principal:  identity.PrincipalService,
		Credential: cred,
	}
	v, present := r.header(s.auth.AccountHeader)
	if !present || v == "" {
		o.deny = deny(apierror.AccountRequired, s.auth.AccountHeader)
		return o
	}
	id, ok := validate.NormalizeUUID(v)
	if !ok {
		o.deny = deny(apierror.InvalidAccountID)
		return o
	}
	acct, err := s.dir.Account(ctx, id)
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		o.deny = deny(apierror.AccountNotFound)
		return o
	case err != nil:
		o.deny = unavailable(fmt.Errorf("look up account: %w", err))
		return o
	}
	o.id.AccountID = acct.ID
	if o.id.AccountID == "" {
		o.id.AccountID = id
	}
	return s.authorize(ctx, r, o)
}
