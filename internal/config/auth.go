package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// Credential kinds, in the order Auth.CredentialOrder lists them.
const (
	CredentialAPIKey     = "api_key"
	CredentialBearer     = "bearer"
	CredentialQueryToken = "query_token"
)

// Auth configures how callers are authenticated.
type Auth struct {
	// CredentialOrder is the order in which credentials are looked for; the
	// first one present wins. Default: api_key, bearer, query_token.
	CredentialOrder []string `yaml:"credential_order"`
	APIKeys         APIKeys  `yaml:"api_keys"`
	QueryToken      QueryTok `yaml:"query_token"`
	Issuers         []Issuer `yaml:"issuers"`
	// Leeway applied to exp, nbf and iat (default 30s).
	Leeway Duration `yaml:"leeway"`
	// TokenCacheSize bounds the verified-token cache (entries; 0 disables;
	// default 10000). Entries are keyed by a hash of the token.
	TokenCacheSize int `yaml:"token_cache_size"`
	// AccountHeader names the header that selects a team account (default x-account-id).
	AccountHeader string `yaml:"account_header"`
}

// APIKeys configures platform API keys (x-api-key: pk_...:sk_...).
type APIKeys struct {
	Enabled *bool  `yaml:"enabled"` // default true when a secret is set
	Header  string `yaml:"header"`  // default x-api-key
	// Secret is the HMAC key of secret_key_hash (env API_KEY_SECRET).
	Secret string `yaml:"secret"`
	// TouchInterval is how often last_used_at updates are flushed (default 10s).
	TouchInterval Duration `yaml:"touch_interval"`
}

// On reports whether API keys are accepted.
func (a APIKeys) On() bool {
	if a.Enabled != nil {
		return *a.Enabled
	}
	return a.Secret != ""
}

// QueryTok configures the optional token query parameter for streaming clients.
type QueryTok struct {
	Enabled bool `yaml:"enabled"` // default false
	// Param is the parameter name (default "token"). Only this exact, raw
	// name is read; letters, digits, "-", ".", "_" and "~" only.
	Param string `yaml:"param"`
}

// Issuer is one configured JWT issuer. Tokens whose iss is not configured
// are refused; key material is never fetched from a URL the token names.
type Issuer struct {
	Issuer    string   `yaml:"issuer"`
	Audiences []string `yaml:"audiences"` // default [authenticated]
	// HS256Secret is the shared secret (Supabase legacy JWT secret).
	HS256Secret string `yaml:"hs256_secret"`
	// HS256SecretEnv names an environment variable holding the secret
	// (default SUPABASE_JWT_SECRET for the first issuer).
	HS256SecretEnv string `yaml:"hs256_secret_env"`
	// JWKSURL is the JWKS endpoint. Empty with JWKS true means
	// {issuer}/.well-known/jwks.json, falling back to OpenID discovery.
	JWKSURL string `yaml:"jwks_url"`
	// JWKS enables asymmetric keys from the issuer's JWKS (default true when
	// no HS256 secret is set, or when jwks_url is set).
	JWKS *bool `yaml:"jwks"`
	// JWKSHeaders are extra request headers for JWKS fetches (Supabase: apikey).
	JWKSHeaders map[string]string `yaml:"jwks_headers"`
	// JWKSHeadersEnv maps header name to an environment variable holding its value.
	JWKSHeadersEnv map[string]string `yaml:"jwks_headers_env"`
	// JWKSRefresh is the background refresh period (default 10m).
	JWKSRefresh Duration `yaml:"jwks_refresh"`
	// UnknownKIDRefetch is the minimum interval between refetches caused by
	// an unknown kid (default 30s).
	UnknownKIDRefetch Duration `yaml:"unknown_kid_refetch"`
	// Algorithms allowed with JWKS keys (default RS256, ES256, EdDSA).
	Algorithms []string `yaml:"algorithms"`
	// AllowAnonymous accepts tokens of Supabase anonymous users
	// (is_anonymous: true, role authenticated); default false refuses them
	// with 403 anonymous_user.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// ProjectRef is the Supabase project ref of this issuer (default: the
	// <ref> of an issuer https://<ref>.supabase.co/auth/v1). A legacy
	// service_role key (iss "supabase") is accepted only by the issuer whose
	// project ref equals the key's ref claim.
	ProjectRef string `yaml:"project_ref"`
	// ServiceRole accepts this project's Supabase service_role key (HS256,
	// verified with this issuer's secret only) as a service principal
	// acting for the account named in x-account-id (default false).
	ServiceRole bool `yaml:"service_role"`
}

// projectRefRe is the syntax of a Supabase project ref.
var projectRefRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Ref returns the issuer's Supabase project ref: ProjectRef when set,
// otherwise <ref> of an issuer https://<ref>.supabase.co/auth/v1, otherwise "".
func (i Issuer) Ref() string {
	if i.ProjectRef != "" {
		return i.ProjectRef
	}
	u, err := url.Parse(i.Issuer)
	if err != nil || u.Scheme != "https" || u.Port() != "" || strings.TrimSuffix(u.Path, "/") != "/auth/v1" {
		return ""
	}
	ref, ok := strings.CutSuffix(strings.ToLower(u.Hostname()), ".supabase.co")
	if !ok || !projectRefRe.MatchString(ref) {
		return ""
	}
	return ref
}

// UsesJWKS reports whether asymmetric keys are fetched for this issuer.
func (i Issuer) UsesJWKS() bool {
	if i.JWKS != nil {
		return *i.JWKS
	}
	return i.HS256Secret == "" || i.JWKSURL != ""
}

func (a *Auth) applyDefaults() {
	if len(a.CredentialOrder) == 0 {
		a.CredentialOrder = []string{CredentialAPIKey, CredentialBearer, CredentialQueryToken}
	}
	if a.APIKeys.Header == "" {
		a.APIKeys.Header = "x-api-key"
	}
	if a.APIKeys.TouchInterval == 0 {
		a.APIKeys.TouchInterval = Duration(10 * time.Second)
	}
	if a.QueryToken.Param == "" {
		a.QueryToken.Param = "token"
	}
	if a.Leeway == 0 {
		a.Leeway = Duration(30 * time.Second)
	}
	if a.TokenCacheSize == 0 {
		a.TokenCacheSize = 10000
	}
	if a.AccountHeader == "" {
		a.AccountHeader = "x-account-id"
	}
	for i := range a.Issuers {
		is := &a.Issuers[i]
		if len(is.Audiences) == 0 {
			is.Audiences = []string{"authenticated"}
		}
		if is.JWKSRefresh == 0 {
			is.JWKSRefresh = Duration(10 * time.Minute)
		}
		if is.UnknownKIDRefetch == 0 {
			is.UnknownKIDRefetch = Duration(30 * time.Second)
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = []string{"RS256", "ES256", "EdDSA"}
		}
	}
}

// unreservedName reports whether s is non-empty and made of URL unreserved
// characters only (RFC 3986), so that it has exactly one spelling in a query.
func unreservedName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

// DefaultJWKSURL is {issuer}/.well-known/jwks.json.
func (i Issuer) DefaultJWKSURL() string {
	u, err := url.Parse(i.Issuer)
	if err != nil {
		return ""
	}
	u.Path = path.Join(u.Path, ".well-known", "jwks.json")
	return u.String()
}

func (a *Auth) validate() []error {
	var errs []error
	seen := map[string]bool{}
	for _, k := range a.CredentialOrder {
		switch k {
		case CredentialAPIKey, CredentialBearer, CredentialQueryToken:
		default:
			errs = append(errs, fmt.Errorf("auth.credential_order: unknown credential %q", k))
		}
		if seen[k] {
			errs = append(errs, fmt.Errorf("auth.credential_order: %q listed twice", k))
		}
		seen[k] = true
	}
	if a.APIKeys.Enabled != nil && *a.APIKeys.Enabled && a.APIKeys.Secret == "" {
		errs = append(errs, errors.New("auth.api_keys: enabled but no secret (set API_KEY_SECRET)"))
	}
	issuers := map[string]bool{}
	refs := map[string]string{}
	for i, is := range a.Issuers {
		where := fmt.Sprintf("auth.issuers[%d]", i)
		if is.Issuer == "" {
			errs = append(errs, fmt.Errorf("%s: issuer is required", where))
			continue
		}
		if issuers[is.Issuer] {
			errs = append(errs, fmt.Errorf("%s: issuer %q configured twice", where, is.Issuer))
		}
		issuers[is.Issuer] = true
		if is.HS256Secret == "" && !is.UsesJWKS() {
			errs = append(errs, fmt.Errorf("%s: no key source (set hs256_secret/%s or jwks)", where, EnvSupabaseJWTSecret))
		}
		if is.HS256Secret != "" && len(is.HS256Secret) < 32 {
			errs = append(errs, fmt.Errorf("%s: hs256 secret is shorter than 32 bytes", where))
		}
		if is.UsesJWKS() {
			u := is.JWKSURL
			if u == "" {
				u = is.Issuer
			}
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
				errs = append(errs, fmt.Errorf("%s: jwks needs an absolute http(s) URL, got %q", where, u))
			}
		}
		if is.ProjectRef != "" && !projectRefRe.MatchString(is.ProjectRef) {
			errs = append(errs, fmt.Errorf("%s: project_ref %q is not a Supabase project ref (lower-case letters, digits, -)", where, is.ProjectRef))
		}
		if ref := is.Ref(); ref != "" {
			if other, dup := refs[ref]; dup {
				errs = append(errs, fmt.Errorf("%s: project ref %q is also the ref of %s", where, ref, other))
			}
			refs[ref] = where
		}
		if is.ServiceRole && is.HS256Secret == "" {
			errs = append(errs, fmt.Errorf("%s: service_role needs the project's HS256 secret (service_role keys are HS256 JWTs)", where))
		}
		for _, alg := range is.Algorithms {
			switch alg {
			case "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA":
			default:
				errs = append(errs, fmt.Errorf("%s: algorithm %q not allowed for JWKS keys", where, alg))
			}
		}
	}
	if !unreservedName(a.QueryToken.Param) {
		// Envoy removes the parameter by its raw name; a name that needs
		// percent-encoding has more than one spelling.
		errs = append(errs, fmt.Errorf(`auth.query_token.param: %q must be letters, digits, "-", ".", "_" or "~"`, a.QueryToken.Param))
	}
	if a.TokenCacheSize < 0 {
		errs = append(errs, errors.New("auth.token_cache_size: must not be negative"))
	}
	if a.Leeway < 0 || a.Leeway.D() > 5*time.Minute {
		errs = append(errs, errors.New("auth.leeway: must be between 0 and 5m"))
	}
	return errs
}
