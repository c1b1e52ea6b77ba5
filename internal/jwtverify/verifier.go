package jwtverify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/metrics"
)

const (
	// maxTokenLen bounds the size of a token accepted for parsing.
	maxTokenLen = 16 << 10
	// maxJWKSBody bounds JWKS and discovery documents.
	maxJWKSBody = 1 << 20
	// fetchTimeout bounds one JWKS fetch (including discovery).
	fetchTimeout = 10 * time.Second
	// unknownIssuerLabel is the metric label for tokens naming an issuer
	// that is not configured (the token's value is never used as a label).
	unknownIssuerLabel = "unknown"
)

// Options are the optional dependencies of a Verifier.
type Options struct {
	HTTPClient *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Verifier verifies JWTs of the configured issuers.
type Verifier struct {
	issuers map[string]*issuer
	ordered []*issuer
	leeway  time.Duration
	now     func() time.Time
	log     *slog.Logger
	client  *http.Client
	cache   *tokenCache

	verifications *prometheus.CounterVec
	fetches       *prometheus.CounterVec
}

// issuer is the runtime state of one configured issuer.
type issuer struct {
	name       string
	audiences  []string
	allowAnon  bool // accept is_anonymous: true
	hsSecret   []byte
	jwks       bool
	methods    []string // algorithms accepted for this issuer
	jwksURL    string
	discover   bool // fall back to OpenID discovery when jwksURL fails
	headers    map[string]string
	refresh    time.Duration
	kidRefetch time.Duration

	sf singleflight.Group

	mu           sync.RWMutex
	keys         []publicKey
	lastKIDFetch time.Time
}

// New builds a Verifier for cfg.Issuers and starts the background JWKS
// refresh of every JWKS issuer; the refresh stops when ctx ends.
func New(ctx context.Context, cfg config.Auth, opts Options) (*Verifier, error) {
	v := &Verifier{
		issuers: make(map[string]*issuer, len(cfg.Issuers)),
		leeway:  cfg.Leeway.D(),
		now:     opts.Now,
		log:     opts.Logger,
		cache:   newTokenCache(cfg.TokenCacheSize),
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.client = safeClient(opts.HTTPClient)
	if v.leeway < 0 {
		return nil, errors.New("jwtverify: negative leeway")
	}
	for i, ic := range cfg.Issuers {
		is, err := newIssuer(ic)
		if err != nil {
			return nil, fmt.Errorf("jwtverify: issuers[%d]: %w", i, err)
		}
		if _, dup := v.issuers[is.name]; dup {
			return nil, fmt.Errorf("jwtverify: issuers[%d]: issuer %q configured twice", i, is.name)
		}
		v.issuers[is.name] = is
		v.ordered = append(v.ordered, is)
	}
	v.verifications = registerCounter(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_jwt_verifications_total",
		Help: "JWT verifications by issuer and result (valid, cached, invalid, anonymous, unavailable).",
	}, []string{"issuer", "result"}))
	v.fetches = registerCounter(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_jwks_fetches_total",
		Help: "JWKS fetches by issuer and result (ok, error).",
	}, []string{"issuer", "result"}))
	for _, is := range v.ordered {
		if is.jwks {
			go v.refreshLoop(ctx, is)
		}
	}
	return v, nil
}

func newIssuer(ic config.Issuer) (*issuer, error) {
	u, err := url.Parse(ic.Issuer)
	if ic.Issuer == "" || err != nil {
		return nil, errors.New("issuer is required")
	}
	is := &issuer{
		name:       ic.Issuer,
		audiences:  slices.Clone(ic.Audiences),
		allowAnon:  ic.AllowAnonymous,
		jwks:       ic.UsesJWKS(),
		headers:    ic.JWKSHeaders,
		refresh:    ic.JWKSRefresh.D(),
		kidRefetch: ic.UnknownKIDRefetch.D(),
	}
	if len(is.audiences) == 0 {
		is.audiences = []string{"authenticated"}
	}
	if is.refresh <= 0 {
		is.refresh = 10 * time.Minute
	}
	if is.kidRefetch <= 0 {
		is.kidRefetch = 30 * time.Second
	}
	if ic.HS256Secret != "" {
		if len(ic.HS256Secret) < 32 {
			return nil, errors.New("hs256 secret is shorter than 32 bytes")
		}
		is.hsSecret = []byte(ic.HS256Secret)
		is.methods = append(is.methods, "HS256")
	}
	if is.jwks {
		algs := ic.Algorithms
		if len(algs) == 0 {
			algs = []string{"RS256", "ES256", "EdDSA"}
		}
		for _, a := range algs {
			if a == "HS256" || a == "none" || !(publicKey{kty: "RSA"}.allows(a) || publicKey{kty: "EC", crv: "P-256"}.allows(a) ||
				publicKey{kty: "EC", crv: "P-384"}.allows(a) || publicKey{kty: "OKP", crv: "Ed25519"}.allows(a)) {
				return nil, fmt.Errorf("algorithm %q not allowed for JWKS keys", a)
			}
			is.methods = append(is.methods, a)
		}
		is.jwksURL = ic.JWKSURL
		if is.jwksURL == "" {
			is.jwksURL = ic.DefaultJWKSURL()
			is.discover = true
		}
		ju, err := url.Parse(is.jwksURL)
		if err != nil || (ju.Scheme != "http" && ju.Scheme != "https") || ju.Host == "" {
			return nil, errors.New("jwks needs an absolute http(s) URL")
		}
		if is.discover && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
			return nil, errors.New("issuer must be an absolute http(s) URL for JWKS discovery")
		}
	}
	if len(is.methods) == 0 {
		return nil, errors.New("no key source (hs256 secret or jwks)")
	}
	return is, nil
}

// safeClient returns a copy of c (or a default client) that refuses
// cross-origin redirects, so configured JWKS headers never leave the
// configured origin.
func safeClient(c *http.Client) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	}
	if cp.Timeout == 0 {
		cp.Timeout = fetchTimeout
	}
	next := cp.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if !sameOrigin(req.URL, via[0].URL) {
			return errors.New("cross-origin redirect refused")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &cp
}

// registerCounter registers c (or reuses the equal collector already on
// reg); a registration conflict leaves c working but unexported.
func registerCounter(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	c, _ = metrics.Register(reg, c)
	return c
}

// tokenClaims is the claim set decoded from a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Role        string    `json:"role"`
	Email       string    `json:"email"`
	IsAnonymous anonClaim `json:"is_anonymous"`
}

// anonClaim is Supabase's is_anonymous claim. Only JSON true and false are
// accepted; any other value (null, "true", 1) makes the token invalid
// rather than quietly counting as a permanent user.
type anonClaim bool

func (a *anonClaim) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*a = true
	case "false":
		*a = false
	default:
		return errors.New("is_anonymous is not a boolean")
	}
	return nil
}

// Verify checks token and returns its claims. Refusals wrap ErrInvalidToken
// with a short reason (a token that is only expired is an *ExpiredError);
// ErrAnonymous refuses a valid token of an anonymous user where the issuer
// does not allow them; ErrUnavailable means the issuer's keys could not be
// obtained. No error ever contains the token.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	c, label, result, err := v.verify(ctx, token)
	v.verifications.WithLabelValues(label, result).Inc()
	return c, err
}

func invalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, reason) }

func (v *Verifier) verify(ctx context.Context, token string) (Claims, string, string, error) {
	if token == "" || len(token) > maxTokenLen {
		return Claims{}, unknownIssuerLabel, "invalid", invalid("malformed")
	}
	now := v.now()
	sum := sha256.Sum256([]byte(token))
	if c, ok := v.cache.get(sum, now); ok {
		return c, c.Issuer, "cached", nil
	}
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return Claims{}, unknownIssuerLabel, "invalid", err
	}
	is, ok := v.issuers[iss]
	if !ok {
		return Claims{}, unknownIssuerLabel, "invalid", invalid("unknown issuer")
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(is.methods),
		jwt.WithLeeway(v.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(is.name),
		jwt.WithAudience(is.audiences...),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var keyErr error
	var tc tokenClaims
	_, err = parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		k, err := v.keyFor(ctx, is, t)
		keyErr = err
		return k, err
	})
	switch {
	case keyErr != nil:
		if errors.Is(keyErr, ErrUnavailable) {
			return Claims{}, is.name, "unavailable", keyErr
		}
		return Claims{}, is.name, "invalid", keyErr
	case err != nil && onlyExpired(err) && tc.Subject != "" && tc.ExpiresAt != nil:
		return Claims{}, is.name, "invalid", &ExpiredError{ExpiresAt: tc.ExpiresAt.Time}
	case err != nil:
		return Claims{}, is.name, "invalid", invalid(reason(err))
	}
	if tc.Subject == "" {
		return Claims{}, is.name, "invalid", invalid("missing sub")
	}
	if bool(tc.IsAnonymous) && !is.allowAnon {
		// Not cached: the refusal is cheap to repeat and must follow the
		// configuration of the issuer.
		return Claims{}, is.name, "anonymous", ErrAnonymous
	}
	c := Claims{
		Subject:   tc.Subject,
		Issuer:    is.name,
		Audience:  slices.Clone([]string(tc.Audience)),
		Role:      tc.Role,
		Email:     tc.Email,
		Anonymous: bool(tc.IsAnonymous),
		ExpiresAt: tc.ExpiresAt.Time,
	}
	v.cache.put(sum, c, now)
	return c, is.name, "valid", nil
}

// onlyExpired reports whether a parse error is an expiry and nothing else:
// the signature verified (the parser validates claims only after it) and no
// other claim failed, so that a new token of the same kind would pass.
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	for _, other := range []error{
		jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidAudience, jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenInvalidSubject, jwt.ErrTokenInvalidId, jwt.ErrTokenNotValidYet,
		jwt.ErrTokenUsedBeforeIssued, jwt.ErrInvalidType,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}

// reason maps a jwt parse error to a short refusal reason.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not yet valid"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing required claim"
	case errors.Is(err, jwt.ErrInvalidType):
		return "bad claim type"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable"
	default:
		return "invalid"
	}
}

// unverifiedIssuer reads iss from the unverified payload. It is used only to
// choose among configured issuers.
func unverifiedIssuer(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", invalid("malformed")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", invalid("malformed")
	}
	var p struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", invalid("malformed")
	}
	iss, ok := p.Iss.(string)
	if !ok || iss == "" {
		return "", invalid("missing iss")
	}
	return iss, nil
}

// keyFor picks the verification key for a token whose algorithm the parser
// already checked against the issuer's allowlist.
func (v *Verifier) keyFor(ctx context.Context, is *issuer, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, invalid("unsupported critical header")
	}
	alg := t.Method.Alg()
	if !slices.Contains(is.methods, alg) {
		return nil, invalid("algorithm not allowed")
	}
	if alg == "HS256" {
		if is.hsSecret == nil {
			return nil, invalid("algorithm not allowed")
		}
		return is.hsSecret, nil
	}
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, invalid("malformed kid")
		}
		kid = s
	}
	keys := is.snapshot()
	if len(keys) == 0 || (kid != "" && !hasKID(keys, kid)) {
		// Fetch failures are logged and counted by fetch; the outcome is
		// judged by the key set that is loaded afterwards.
		_ = v.refetchForKID(ctx, is)
		keys = is.snapshot()
		if len(keys) == 0 {
			return nil, fmt.Errorf("%w: no keys for issuer", ErrUnavailable)
		}
	}
	if kid != "" {
		for _, k := range keys {
			if k.kid == kid {
				if !k.allows(alg) {
					return nil, invalid("key does not allow algorithm")
				}
				return k.key, nil
			}
		}
		return nil, invalid("unknown kid")
	}
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if k.allows(alg) {
			set.Keys = append(set.Keys, k.key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, invalid("no key for algorithm")
	}
	return set, nil
}

func hasKID(keys []publicKey, kid string) bool {
	return slices.ContainsFunc(keys, func(k publicKey) bool { return k.kid == kid })
}

func (is *issuer) snapshot() []publicKey {
	is.mu.RLock()
	defer is.mu.RUnlock()
	return is.keys
}

// refetchForKID refetches the issuer's JWKS because a token named a kid that
// is not in the set (or no keys are loaded), at most once per
// UnknownKIDRefetch interval; concurrent callers share one fetch. It returns
// nil without fetching when rate-limited.
func (v *Verifier) refetchForKID(ctx context.Context, is *issuer) error {
	now := v.now()
	is.mu.Lock()
	if since := now.Sub(is.lastKIDFetch); !is.lastKIDFetch.IsZero() && since >= 0 && since < is.kidRefetch {
		is.mu.Unlock()
		return nil
	}
	is.lastKIDFetch = now
	is.mu.Unlock()
	ch := is.sf.DoChan("jwks", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		return nil, v.fetch(fctx, is)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refreshLoop fetches the issuer's JWKS now and every JWKSRefresh until ctx
// ends. While no keys are loaded, failures are retried every
// UnknownKIDRefetch instead.
func (v *Verifier) refreshLoop(ctx context.Context, is *issuer) {
	for {
		_, err, _ := is.sf.Do("jwks", func() (any, error) {
			fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
			defer cancel()
			return nil, v.fetch(fctx, is)
		})
		wait := is.refresh
		if err != nil && len(is.snapshot()) == 0 && is.kidRefetch < wait {
			wait = is.kidRefetch
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fetch loads the issuer's JWKS and replaces the key set on success; on
// failure the last good keys stay in place.
func (v *Verifier) fetch(ctx context.Context, is *issuer) error {
	keys, err := v.fetchKeys(ctx, is, is.jwksURL)
	if err != nil && is.discover {
		var derr error
		keys, derr = v.discoverKeys(ctx, is)
		if derr != nil {
			err = fmt.Errorf("%w; discovery: %w", err, derr)
		} else {
			err = nil
		}
	}
	if err != nil {
		v.fetches.WithLabelValues(is.name, "error").Inc()
		v.log.WarnContext(ctx, "jwks fetch failed; keeping last good keys",
			slog.String("issuer", is.name), slog.Int("cached_keys", len(is.snapshot())), slog.String("error", err.Error()))
		return fmt.Errorf("jwks %s: %w", is.name, err)
	}
	v.fetches.WithLabelValues(is.name, "ok").Inc()
	is.mu.Lock()
	is.keys = keys
	is.mu.Unlock()
	v.log.DebugContext(ctx, "jwks loaded", slog.String("issuer", is.name), slog.Int("keys", len(keys)))
	return nil
}

func (v *Verifier) fetchKeys(ctx context.Context, is *issuer, u string) ([]publicKey, error) {
	body, err := v.get(ctx, is, u)
	if err != nil {
		return nil, err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return nil, err
	}
	if skipped > 0 {
		v.log.InfoContext(ctx, "jwks keys skipped", slog.String("issuer", is.name), slog.Int("skipped", skipped))
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks has no usable keys")
	}
	return keys, nil
}

// discoverKeys reads jwks_uri from {issuer}/.well-known/openid-configuration;
// the jwks_uri must be on the issuer's origin.
func (v *Verifier) discoverKeys(ctx context.Context, is *issuer) ([]publicKey, error) {
	iu, err := url.Parse(is.name)
	if err != nil {
		return nil, errors.New("bad issuer url")
	}
	du := *iu
	du.Path = path.Join(iu.Path, ".well-known", "openid-configuration")
	du.RawPath, du.RawQuery, du.Fragment = "", "", ""
	body, err := v.get(ctx, is, du.String())
	if err != nil {
		return nil, err
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode openid configuration: %w", err)
	}
	ju, err := url.Parse(doc.JWKSURI)
	if doc.JWKSURI == "" || err != nil || !sameOrigin(ju, iu) {
		return nil, errors.New("jwks_uri missing or not on the issuer's origin")
	}
	return v.fetchKeys(ctx, is, ju.String())
}

// get performs a bounded GET with the issuer's configured headers. Errors
// name the host only, never the full URL or the headers.
func (v *Verifier) get(ctx context.Context, is *issuer, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errors.New("bad jwks url")
	}
	req.Header.Set("Accept", "application/json")
	for k, val := range is.headers {
		req.Header.Set(k, val)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBody))
		return nil, fmt.Errorf("GET %s: status %d", req.URL.Host, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read: %w", req.URL.Host, err)
	}
	if len(body) > maxJWKSBody {
		return nil, fmt.Errorf("GET %s: response larger than %d bytes", req.URL.Host, maxJWKSBody)
	}
	return body, nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(hostPort(a), hostPort(b))
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return u.Hostname() + ":" + port
}

// Ready returns nil when every JWKS issuer has usable keys. Issuers that use
// only an HS256 secret are always ready.
func (v *Verifier) Ready(ctx context.Context) error {
	var errs []error
	for _, is := range v.ordered {
		if is.jwks && len(is.snapshot()) == 0 {
			errs = append(errs, fmt.Errorf("issuer %s: no jwks keys: %w", is.name, ErrUnavailable))
		}
	}
	return errors.Join(errs...)
}
