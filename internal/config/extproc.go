package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/store/validate"
)

// Tenant sources for ext_proc.
const (
	TenantFromMetadata = "metadata"
	TenantFromHeaders  = "headers"
)

// Policies for an enterprise tenant without an enabled routing row.
const (
	NoRoutePlatform = "platform"
	NoRouteDeny     = "deny"
)

// Policies for a cross-region model id whose geography prefix does not
// serve the signer's region.
const (
	GeographyReject  = "reject"
	GeographyRewrite = "rewrite"
)

// Policies for the async-invoke operations (StartAsyncInvoke,
// ListAsyncInvokes, GetAsyncInvoke).
const (
	AsyncInvokeDeny       = "deny"
	AsyncInvokeTenantOnly = "tenant_only"
	AsyncInvokeAllow      = "allow"
)

// ExtProc configures the Bedrock re-signing processor.
type ExtProc struct {
	// TenantSource is "metadata" (default: ext_authz dynamic metadata
	// forwarded by Envoy) or "headers" (x-account-id / x-enterprise, only
	// where ext_authz runs at another, trusted hop).
	TenantSource string `yaml:"tenant_source"`
	// DefaultRegion is the platform's region and the region of routes
	// without one (default us-east-1, or AWS_REGION).
	DefaultRegion string `yaml:"default_region"`
	// EndpointTemplate is the upstream host; {region} is replaced (default
	// bedrock-runtime.{region}.amazonaws.com).
	EndpointTemplate string `yaml:"endpoint_template"`
	// ControlEndpointTemplate is the upstream host of the read-only
	// control-plane calls (GetInferenceProfile, ListInferenceProfiles,
	// GetFoundationModel, ListFoundationModels); {region} is replaced
	// (default bedrock.{region}.amazonaws.com).
	ControlEndpointTemplate string `yaml:"control_endpoint_template"`
	// SigningName is the SigV4 service name (default bedrock).
	SigningName string `yaml:"signing_name"`
	// EnterpriseWithoutRoute is "deny" (default: an enterprise tenant
	// without an enabled routing row gets 403 no_tenant_route) or
	// "platform" (sign with the platform's credentials; every fallback is
	// logged and counted in tenantgate_extproc_platform_fallbacks_total).
	EnterpriseWithoutRoute string `yaml:"enterprise_without_route"`
	// AsyncInvoke governs the async-invoke operations: "tenant_only"
	// (default: only for requests signed with the tenant's own role; on the
	// shared platform identity they would list, read and start jobs across
	// tenants, so platform-signed ones get 403 async_invoke_not_allowed),
	// "deny" (always 403) or "allow". Where allowed, StartAsyncInvoke's body
	// modelId must be a model the tier's plan allows (else 403
	// model_not_allowed).
	AsyncInvoke string `yaml:"async_invoke"`
	// MaxBodyBytes limits a signed request body (default 10 MiB); larger → 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// KeepIdentityHeaders forwards the x-account-* identity headers upstream.
	KeepIdentityHeaders bool `yaml:"keep_identity_headers"`
	// Geography is "reject" (default: 400 geography_mismatch naming the
	// right prefix) or "rewrite" (the prefix is changed to the signer's
	// geography) for a cross-region model id (us., eu., apac., …) whose
	// geography does not serve the signing region; global. always passes.
	Geography string `yaml:"geography"`
	// PlatformAccountID is the platform's AWS account id; when set, a model
	// ARN naming another account is refused for platform-signed requests.
	PlatformAccountID string `yaml:"platform_account_id"`
	// PlatformRoleARN, when set, is the platform's own Bedrock invoker role:
	// platform-signed requests use a session of it per tenant (assumed with
	// the platform's base credentials, tagged account_id and tier, with
	// SourceIdentity = account id, cached per tenant like enterprise
	// credentials) instead of the base credentials, so that CloudTrail and
	// cost allocation by IAM principal show each tenant. Its trust policy
	// must allow sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity.
	PlatformRoleARN string     `yaml:"platform_role_arn"`
	AssumeRole      AssumeRole `yaml:"assume_role"`
}

// AssumeRole configures tenant credentials from STS.
type AssumeRole struct {
	Duration Duration `yaml:"duration"` // default 1h (900s..12h)
	// RefreshBefore refreshes cached credentials this long before expiry
	// (default 5m), with up to RefreshJitter added (default 1m).
	RefreshBefore Duration `yaml:"refresh_before"`
	RefreshJitter Duration `yaml:"refresh_jitter"`
	// FailureTTL caches an STS failure for a tenant (default 5s).
	FailureTTL Duration `yaml:"failure_ttl"`
	// Timeout bounds one STS call (default 5s).
	Timeout Duration `yaml:"timeout"`
	// SessionNamePrefix prefixes RoleSessionName (default tenantgate-).
	SessionNamePrefix string `yaml:"session_name_prefix"`
	// WarmOnStart assumes the role of every enabled route at start.
	WarmOnStart bool `yaml:"warm_on_start"`
}

func (e *ExtProc) applyDefaults() {
	if e.TenantSource == "" {
		e.TenantSource = TenantFromMetadata
	}
	if e.EndpointTemplate == "" {
		e.EndpointTemplate = "bedrock-runtime.{region}.amazonaws.com"
	}
	if e.ControlEndpointTemplate == "" {
		e.ControlEndpointTemplate = "bedrock.{region}.amazonaws.com"
	}
	if e.SigningName == "" {
		e.SigningName = "bedrock"
	}
	if e.EnterpriseWithoutRoute == "" {
		e.EnterpriseWithoutRoute = NoRouteDeny
	}
	if e.AsyncInvoke == "" {
		e.AsyncInvoke = AsyncInvokeTenantOnly
	}
	if e.MaxBodyBytes == 0 {
		e.MaxBodyBytes = 10 << 20
	}
	if e.Geography == "" {
		e.Geography = GeographyReject
	}
	a := &e.AssumeRole
	if a.Duration == 0 {
		a.Duration = Duration(time.Hour)
	}
	if a.RefreshBefore == 0 {
		a.RefreshBefore = Duration(5 * time.Minute)
	}
	if a.RefreshJitter == 0 {
		a.RefreshJitter = Duration(time.Minute)
	}
	if a.FailureTTL == 0 {
		a.FailureTTL = Duration(5 * time.Second)
	}
	if a.Timeout == 0 {
		a.Timeout = Duration(5 * time.Second)
	}
	if a.SessionNamePrefix == "" {
		a.SessionNamePrefix = "tenantgate-"
	}
}

var (
	regionRe    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	accountIDRe = regexp.MustCompile(`^\d{12}$`)
)

// ValidRegion reports whether s looks like an AWS region name.
func ValidRegion(s string) bool { return regionRe.MatchString(s) }

// Host returns the upstream host for region.
func (e ExtProc) Host(region string) string {
	return strings.ReplaceAll(e.EndpointTemplate, "{region}", region)
}

// ControlHost returns the control-plane upstream host for region.
func (e ExtProc) ControlHost(region string) string {
	return strings.ReplaceAll(e.ControlEndpointTemplate, "{region}", region)
}

func (e *ExtProc) validate() []error {
	var errs []error
	switch e.TenantSource {
	case TenantFromMetadata, TenantFromHeaders:
	default:
		errs = append(errs, fmt.Errorf("extproc.tenant_source: %q is not metadata or headers", e.TenantSource))
	}
	switch e.EnterpriseWithoutRoute {
	case NoRoutePlatform, NoRouteDeny:
	default:
		errs = append(errs, fmt.Errorf("extproc.enterprise_without_route: %q is not platform or deny", e.EnterpriseWithoutRoute))
	}
	switch e.Geography {
	case GeographyReject, GeographyRewrite:
	default:
		errs = append(errs, fmt.Errorf("extproc.geography: %q is not reject or rewrite", e.Geography))
	}
	if e.PlatformRoleARN != "" && !validate.RoleARN(e.PlatformRoleARN) {
		errs = append(errs, fmt.Errorf("extproc.platform_role_arn: %q is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)", e.PlatformRoleARN))
	}
	if e.PlatformAccountID != "" && !accountIDRe.MatchString(e.PlatformAccountID) {
		errs = append(errs, fmt.Errorf("extproc.platform_account_id: %q is not a 12-digit AWS account id", e.PlatformAccountID))
	}
	switch e.AsyncInvoke {
	case AsyncInvokeDeny, AsyncInvokeTenantOnly, AsyncInvokeAllow:
	default:
		errs = append(errs, fmt.Errorf("extproc.async_invoke: %q is not deny, tenant_only or allow", e.AsyncInvoke))
	}
	if e.DefaultRegion != "" && !ValidRegion(e.DefaultRegion) {
		errs = append(errs, fmt.Errorf("extproc.default_region: %q is not a region", e.DefaultRegion))
	}
	if !strings.Contains(e.EndpointTemplate, "{region}") {
		errs = append(errs, errors.New("extproc.endpoint_template: must contain {region}"))
	}
	if !strings.Contains(e.ControlEndpointTemplate, "{region}") {
		errs = append(errs, errors.New("extproc.control_endpoint_template: must contain {region}"))
	}
	if e.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("extproc.max_body_bytes: must not be negative"))
	}
	d := e.AssumeRole.Duration.D()
	if d < 15*time.Minute || d > 12*time.Hour {
		errs = append(errs, errors.New("extproc.assume_role.duration: must be between 15m and 12h"))
	}
	if e.AssumeRole.RefreshBefore.D() >= d {
		errs = append(errs, errors.New("extproc.assume_role.refresh_before: must be shorter than duration"))
	}
	if e.AssumeRole.RefreshJitter < 0 || e.AssumeRole.FailureTTL < 0 || e.AssumeRole.Timeout < 0 {
		errs = append(errs, errors.New("extproc.assume_role: refresh_jitter, failure_ttl and timeout must not be negative"))
	}
	if len(e.AssumeRole.SessionNamePrefix) > 32 {
		errs = append(errs, errors.New("extproc.assume_role.session_name_prefix: at most 32 characters"))
	}
	return errs
}
