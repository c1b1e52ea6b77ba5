package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tenantgate/tenantgate/extauthz"
	"github.com/tenantgate/tenantgate/extproc"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/jwtverify"
	"github.com/tenantgate/tenantgate/internal/plan"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// ExplainRequest is one request to explain. Token is a bearer token or a
// platform API key (pk_...:sk_...); it is never part of the explanation.
type ExplainRequest struct {
	Token   string
	Account string // x-account-id; "" for the caller's personal account
	Method  string // default POST
	Path    string
}

// Explanation is the whole decision chain of one request, as ext_authz and
// ext_proc would take it, without calling AWS. It holds no credential.
type Explanation struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// JWTKeyID is the kid of a JWT's header (informational: the verifier
	// decided whether the key is known).
	JWTKeyID string               `json:"jwt_key_id,omitempty"`
	Authz    extauthz.Explanation `json:"ext_authz"`
	// Proc is ext_proc's routing; nil when ext_authz refused.
	Proc *extproc.Explanation `json:"ext_proc,omitempty"`
	// Allowed, Status and Code are the end result.
	Allowed bool   `json:"allowed"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
}

// errNoAWS is what explain's AWS providers answer: explain never calls AWS.
var errNoAWS = errors.New("explain does not call AWS")

type noTenantCreds struct{}

func (noTenantCreds) Credentials(context.Context, tenant.Route, string) (aws.Credentials, error) {
	return aws.Credentials{}, errNoAWS
}

// Explain builds ext_authz and ext_proc from cfg as New does (against the
// store read directly, without cache) and runs their decision code for req.
// JWKS may be fetched to verify a token; AWS is never called.
func Explain(ctx context.Context, cfg *config.Config, opts Options, req ExplainRequest) (Explanation, error) {
	if cfg == nil {
		return Explanation{}, errors.New("app: nil config")
	}
	if req.Method == "" {
		req.Method = http.MethodPost
	}
	if req.Token == "" || req.Path == "" {
		return Explanation{}, errors.New("app: explain needs a token and a path")
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	st, err := store.OpenDirect(ctx, cfg.Store)
	if err != nil {
		return Explanation{}, fmt.Errorf("app: %w", err)
	}
	defer st.Close()
	verifier, err := jwtverify.New(ctx, cfg.Auth, jwtverify.Options{HTTPClient: httpClient})
	if err != nil {
		return Explanation{}, fmt.Errorf("app: %w", err)
	}
	var keys extauthz.KeyAuthenticator
	if cfg.Auth.APIKeys.On() {
		keys = apikey.NewAuthenticator(st, cfg.Auth.APIKeys.Secret, apikey.Options{})
	}
	authz, err := extauthz.New(extauthz.Options{Auth: cfg.Auth, Plans: cfg.Plans, Service: cfg.Service, Getenv: opts.Getenv}, verifier, keys, st)
	if err != nil {
		return Explanation{}, fmt.Errorf("app: %w", err)
	}
	plans, err := plan.New(cfg.Plans)
	if err != nil {
		return Explanation{}, fmt.Errorf("app: %w", err)
	}
	proc, err := extproc.New(extproc.Options{
		Config:         cfg.ExtProc,
		Platform:       aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return aws.Credentials{}, errNoAWS }),
		BedrockHeaders: plans,
		Models:         plans,
	}, st, noTenantCreds{})
	if err != nil {
		return Explanation{}, fmt.Errorf("app: %w", err)
	}

	headers := map[string]string{}
	if looksLikeAPIKey(req.Token) && cfg.Auth.APIKeys.On() {
		headers[cfg.Auth.APIKeys.Header] = req.Token
	} else {
		headers["authorization"] = "Bearer " + req.Token
	}
	if req.Account != "" {
		header := cfg.Auth.AccountHeader
		if header == "" {
			header = "x-account-id"
		}
		headers[header] = req.Account
	}
	e := Explanation{Method: req.Method, Path: req.Path, JWTKeyID: jwtKeyID(req.Token)}
	e.Authz = authz.Explain(ctx, req.Method, req.Path, headers)
	e.Allowed, e.Status, e.Code = e.Authz.Allowed, e.Authz.Status, e.Authz.Code
	if !e.Authz.Allowed {
		return e, nil
	}
	p := proc.Explain(ctx, e.Authz.Identity, req.Method, req.Path)
	e.Proc = &p
	e.Allowed, e.Status, e.Code = p.Allowed, p.Status, p.Code
	return e, nil
}

func looksLikeAPIKey(tok string) bool {
	return strings.HasPrefix(tok, "pk_") && strings.Contains(tok, ":sk_")
}

// jwtKeyID reads the kid of a JWT's protected header without verifying
// anything; "" when tok is not a JWT or names no kid.
func jwtKeyID(tok string) string {
	head, _, ok := strings.Cut(tok, ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(b, &h) != nil || len(h.Kid) > 128 {
		return ""
	}
	return h.Kid
}
