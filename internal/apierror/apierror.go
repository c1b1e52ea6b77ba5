// Package apierror owns tenantgate's error catalogue: every stable error code
// that ext_authz, ext_proc or the shipped Envoy configuration answers, with
// its HTTP status, the AWS error type SDKs see, a fixed public message and a
// one-line meaning for the documentation.
//
// Refusals are rendered the way Bedrock's restJson1 protocol answers errors,
// so that boto3 (ClientError.response["Error"]["Code"]), the AWS SDK for
// JavaScript (error.name) and other SDKs report the AWS type:
//
//	HTTP/1.1 403
//	content-type: application/json
//	x-amzn-errortype: AccessDeniedException
//	x-tenantgate-error: model_not_allowed
//
//	{"__type":"AccessDeniedException","message":"…","error":"model_not_allowed"}
//
// The tenantgate code stays visible in the "error" body field and in the
// x-tenantgate-error header. Messages are fixed in the catalogue; the few
// that carry a detail (a size limit, a header name, an expiry time) format
// only the non-secret values their callers pass, never a credential.
package apierror

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Code is a stable tenantgate error code (the "error" body field).
type Code string

// Type is an AWS error type (the x-amzn-errortype header and "__type").
type Type string

// AWS error types used by the catalogue.
const (
	AccessDeniedException               Type = "AccessDeniedException"
	ValidationException                 Type = "ValidationException"
	ThrottlingException                 Type = "ThrottlingException"
	ServiceQuotaExceededException       Type = "ServiceQuotaExceededException"
	ServiceUnavailableException         Type = "ServiceUnavailableException"
	ResourceNotFoundException           Type = "ResourceNotFoundException"
	UnknownOperationException           Type = "UnknownOperationException"
	InternalServerException             Type = "InternalServerException"
	ExpiredTokenException               Type = "ExpiredTokenException"
	UnrecognizedClientException         Type = "UnrecognizedClientException"
	MissingAuthenticationTokenException Type = "MissingAuthenticationTokenException"
)

// Response header names of a rendered error.
const (
	HeaderErrorType       = "x-amzn-errortype"
	HeaderCode            = "x-tenantgate-error"
	HeaderContentType     = "content-type"
	HeaderWWWAuthenticate = "www-authenticate"
	HeaderRetryAfter      = "retry-after"
	ContentTypeJSON       = "application/json"
)

// WWW-Authenticate challenges of 401 answers (RFC 6750).
const (
	challengeMissing = `Bearer realm="tenantgate"`
	challengeInvalid = `Bearer error="invalid_token"`
	challengeExpired = `Bearer error="invalid_token", error_description="token expired"`
)

// Error codes. Each one has exactly one catalogue entry.
const (
	// Credentials (ext_authz).
	MissingCredential Code = "missing_credential"
	InvalidToken      Code = "invalid_token"
	TokenExpired      Code = "token_expired"
	InvalidAPIKey     Code = "invalid_api_key"
	APIKeyRevoked     Code = "api_key_revoked"
	APIKeyExpired     Code = "api_key_expired"
	InvalidServiceKey Code = "invalid_service_key"
	EncodedQueryToken Code = "encoded_query_token"

	// Tenant and plan (ext_authz).
	InvalidAccountID    Code = "invalid_account_id"
	AccountRequired     Code = "account_required"
	NotAMember          Code = "not_a_member"
	NoPersonalAccount   Code = "no_personal_account"
	AccountNotFound     Code = "account_not_found"
	AnonymousUser       Code = "anonymous_user"
	UnknownTier         Code = "unknown_tier"
	ModelNotAllowed     Code = "model_not_allowed"
	InsufficientCredits Code = "insufficient_credits"

	// Either service.
	Unavailable Code = "unavailable"

	// Request and signing (ext_proc).
	NoTenant                       Code = "no_tenant"
	UnsupportedOperation           Code = "unsupported_operation"
	NotImplemented                 Code = "not_implemented"
	BadRequest                     Code = "bad_request"
	GeographyMismatch              Code = "geography_mismatch"
	ModelARNMismatch               Code = "model_arn_mismatch"
	ApplicationProfileDenied       Code = "application_profile_denied"
	InferenceProfileNotAllowed     Code = "inference_profile_not_allowed"
	TrailersNotSupported           Code = "trailers_not_supported"
	AsyncInvokeNotAllowed          Code = "async_invoke_not_allowed"
	BedrockHeaderNotAllowed        Code = "bedrock_header_not_allowed"
	BodyTooLarge                   Code = "body_too_large"
	NoTenantRoute                  Code = "no_tenant_route"
	TenantRoleDenied               Code = "tenant_role_denied"
	TenantCredentialsUnavailable   Code = "tenant_credentials_unavailable"
	PlatformCredentialsUnavailable Code = "platform_credentials_unavailable"
	Internal                       Code = "internal"

	// Envoy (envoy/envoy.yaml).
	RateLimited Code = "rate_limited"
	NotRouted   Code = "not_routed"
)

// Entry is one catalogue row.
type Entry struct {
	Code   Code
	Status int
	Type   Type
	// Message is the public message, a fmt format whose verbs take the
	// values named in Params (none for most codes).
	Message string
	// Params names the values Message formats, for the documentation.
	Params []string
	// Meaning is one line for the documentation: when the code is answered.
	Meaning string
	// Challenge is the WWW-Authenticate value of a 401 ("" otherwise).
	Challenge string
	// RetryAfter is the retry-after value in seconds ("" for none).
	RetryAfter string
	// Source is who answers the code: "ext_authz", "ext_proc", "envoy", or a
	// comma-separated list of them.
	Source string
}

const (
	srcAuthz = "ext_authz"
	srcProc  = "ext_proc"
	srcBoth  = "ext_authz, ext_proc"
	srcAll   = "ext_authz, ext_proc, envoy"
	srcEnvoy = "envoy"
)

// entries is the catalogue, in documentation order.
func entries() []Entry {
	return []Entry{
		{Code: MissingCredential, Status: 401, Type: MissingAuthenticationTokenException, Source: srcAuthz, Challenge: challengeMissing,
			Message: "no credential: send Authorization: Bearer <token> or an API key",
			Meaning: "no bearer token, API key or other accepted credential"},
		{Code: InvalidToken, Status: 401, Type: UnrecognizedClientException, Source: srcAuthz, Challenge: challengeInvalid,
			Message: "the token is not valid",
			Meaning: "JWT malformed, badly signed, of an unknown issuer or audience, not yet valid, not a user token, or a service token refused"},
		{Code: TokenExpired, Status: 401, Type: ExpiredTokenException, Source: srcAuthz, Challenge: challengeExpired,
			Message: "token expired at %v; get a new access token", Params: []string{"exp (RFC 3339)"},
			Meaning: "a correctly signed JWT past its exp (plus auth.leeway)"},
		{Code: InvalidAPIKey, Status: 401, Type: UnrecognizedClientException, Source: srcAuthz, Challenge: challengeInvalid,
			Message: "the API key is not valid",
			Meaning: "API key malformed or unknown, or secret mismatch"},
		{Code: APIKeyRevoked, Status: 401, Type: UnrecognizedClientException, Source: srcAuthz, Challenge: challengeInvalid,
			Message: "the API key has been revoked",
			Meaning: "API key status is revoked"},
		{Code: APIKeyExpired, Status: 401, Type: ExpiredTokenException, Source: srcAuthz, Challenge: challengeInvalid,
			Message: "the API key has expired",
			Meaning: "API key is past `expires_at`"},
		{Code: InvalidServiceKey, Status: 401, Type: UnrecognizedClientException, Source: srcAuthz, Challenge: challengeInvalid,
			Message: "the service key is not valid",
			Meaning: "service API key not valid"},
		{Code: EncodedQueryToken, Status: 401, Type: UnrecognizedClientException, Source: srcAuthz, Challenge: challengeInvalid,
			Message: "the %v query parameter must be sent under its plain name", Params: []string{"auth.query_token.param"},
			Meaning: "the query names the token parameter in another spelling (percent-encoded, other case); only the raw name is read and removed"},
		{Code: InvalidAccountID, Status: 400, Type: ValidationException, Source: srcAuthz,
			Message: "the account id is not a valid UUID",
			Meaning: "`x-account-id` is not a UUID"},
		{Code: AccountRequired, Status: 400, Type: ValidationException, Source: srcAuthz,
			Message: "service callers must name the account in the %v header", Params: []string{"auth.account_header"},
			Meaning: "a service caller did not name the account in `x-account-id`"},
		{Code: NotAMember, Status: 403, Type: AccessDeniedException, Source: srcAuthz,
			Message: "the credential does not belong to the requested account",
			Meaning: "the user (or API key) does not belong to the requested account"},
		{Code: NoPersonalAccount, Status: 403, Type: AccessDeniedException, Source: srcAuthz,
			Message: "the user has no personal account",
			Meaning: "the user has no personal account"},
		{Code: AccountNotFound, Status: 403, Type: AccessDeniedException, Source: srcAuthz,
			Message: "the account does not exist",
			Meaning: "the named account (or the API key's account) does not exist"},
		{Code: AnonymousUser, Status: 403, Type: AccessDeniedException, Source: srcAuthz,
			Message: "anonymous users are not allowed",
			Meaning: "a Supabase anonymous user's token (`is_anonymous: true`) and the issuer does not set `allow_anonymous`"},
		{Code: UnknownTier, Status: 403, Type: AccessDeniedException, Source: srcAuthz,
			Message: "the account's plan tier is not configured",
			Meaning: "the account's tier (or `none`: no `credit_accounts` row) is not listed in `plans.models`"},
		{Code: ModelNotAllowed, Status: 403, Type: AccessDeniedException, Source: srcBoth,
			Message: "the account's plan does not include this model",
			Meaning: "the account's plan does not include this model (in the path, or StartAsyncInvoke's body `modelId`)"},
		{Code: InsufficientCredits, Status: 403, Type: ServiceQuotaExceededException, Source: srcAuthz,
			Message: "the account has no credits left",
			Meaning: "`plans.block_on_no_credits` and the balance is not positive"},
		{Code: Unavailable, Status: 503, Type: ServiceUnavailableException, Source: srcAll, RetryAfter: "1",
			Message: "the gateway cannot decide right now; retry",
			Meaning: "ext_authz or the routing store could not decide (database, JWKS, API key lookup limit), or Envoy could not reach tenantgate; retry"},
		{Code: NoTenant, Status: 403, Type: AccessDeniedException, Source: srcProc,
			Message: "request carries no verified tenant",
			Meaning: "ext_proc got no verified tenant (ext_authz did not run or metadata not forwarded)"},
		{Code: UnsupportedOperation, Status: 404, Type: UnknownOperationException, Source: srcProc,
			Message: "not a supported Bedrock operation",
			Meaning: "not a supported Bedrock runtime or control-plane operation, or a control-plane call while `extproc.control_endpoint_template` is empty"},
		{Code: NotImplemented, Status: 400, Type: ValidationException, Source: srcProc,
			Message: "bidirectional streaming is not supported",
			Meaning: "`InvokeModelWithBidirectionalStream` is not supported"},
		{Code: BadRequest, Status: 400, Type: ValidationException, Source: srcProc,
			Message: "the request cannot be forwarded: %v", Params: []string{"fixed reason"},
			Meaning: "invalid content-length, a request that cannot be signed, or a StartAsyncInvoke body without one string `modelId`"},
		{Code: GeographyMismatch, Status: 400, Type: ValidationException, Source: srcProc,
			Message: "the model id uses the %v. cross-region geography, but this account's requests are served in %v; use %v",
			Params:  []string{"geography prefix", "signing region", "model id to use"},
			Meaning: "the model id's cross-region prefix (`us.`, `eu.`, `apac.`, …) does not serve the signing region and `extproc.geography` is `reject`; the message names the prefix to use"},
		{Code: ModelARNMismatch, Status: 400, Type: ValidationException, Source: srcProc,
			Message: "the model ARN names %v other than the one serving this account's requests%v",
			Params:  []string{`"region <r>" or "an AWS account" (account ids are not named)`, "hint naming the region to use"},
			Meaning: "a model ARN names a region or AWS account other than the signer's"},
		{Code: ApplicationProfileDenied, Status: 403, Type: AccessDeniedException, Source: srcProc,
			Message: "application inference profiles are available only to accounts with their own Bedrock routing; use a system-defined (cross-region) inference profile",
			Meaning: "a platform-signed control-plane call asked for application inference profiles (ListInferenceProfiles with `type` other than `SYSTEM_DEFINED`, GetInferenceProfile of anything but a system-defined profile)"},
		{Code: InferenceProfileNotAllowed, Status: 403, Type: AccessDeniedException, Source: srcProc,
			Message: "this application inference profile does not belong to the account",
			Meaning: "the request names an application inference profile (ARN or bare id) the account may not use: bound to another tenant, or (on the platform identity, or for a tenant that binds profiles) not bound to this one"},
		{Code: TrailersNotSupported, Status: 400, Type: ValidationException, Source: srcProc,
			Message: "requests with trailers are not supported",
			Meaning: "the request carried HTTP trailers, which SigV4 does not cover; Bedrock requests have none"},
		{Code: AsyncInvokeNotAllowed, Status: 403, Type: AccessDeniedException, Source: srcProc,
			Message: "async invocation is not allowed for this account",
			Meaning: "async invocation (Start/List/GetAsyncInvoke) refused by `extproc.async_invoke` (default: only for tenants signed with their own role)"},
		{Code: BedrockHeaderNotAllowed, Status: 400, Type: ValidationException, Source: srcProc,
			Message: "header %v is not allowed for this plan", Params: []string{"header name (known x-amzn-bedrock-* names only)"},
			Meaning: "an `x-amzn-bedrock-*` header the plan does not allow, with `plans.unlisted_bedrock_headers: reject`"},
		{Code: BodyTooLarge, Status: 413, Type: ValidationException, Source: srcProc,
			Message: "request body exceeds %v bytes", Params: []string{"extproc.max_body_bytes"},
			Meaning: "body exceeds `extproc.max_body_bytes`"},
		{Code: NoTenantRoute, Status: 403, Type: AccessDeniedException, Source: srcProc,
			Message: "no enabled Bedrock routing for this account",
			Meaning: "enterprise tenant without an enabled route (`extproc.enterprise_without_route: deny`, the default)"},
		{Code: TenantRoleDenied, Status: 403, Type: AccessDeniedException, Source: srcProc,
			Message: "the tenant's AWS role refused access",
			Meaning: "the tenant's role refused AssumeRole (trust policy / ExternalId)"},
		{Code: TenantCredentialsUnavailable, Status: 502, Type: InternalServerException, Source: srcProc,
			Message: "tenant AWS credentials are unavailable",
			Meaning: "STS failed for the tenant's role, or the route is misconfigured"},
		{Code: PlatformCredentialsUnavailable, Status: 502, Type: InternalServerException, Source: srcProc,
			Message: "platform AWS credentials are unavailable",
			Meaning: "the platform's own AWS credentials could not be loaded"},
		{Code: Internal, Status: 500, Type: InternalServerException, Source: srcProc,
			Message: "internal error",
			Meaning: "an ext_proc protocol error (unexpected message order)"},
		{Code: RateLimited, Status: 429, Type: ThrottlingException, Source: srcEnvoy, RetryAfter: "1",
			Message: "Too many requests",
			Meaning: "Envoy's listener rate limit (before any credential check); AWS SDKs back off and retry"},
		{Code: NotRouted, Status: 404, Type: ResourceNotFoundException, Source: srcEnvoy,
			Message: "no Bedrock endpoint is routed for this request",
			Meaning: "Envoy's catch-all: the request was not routed to a served region's Bedrock host"},
	}
}

// All returns the catalogue in documentation order. The slice is a copy.
func All() []Entry { return entries() }

// Lookup returns the entry of code.
func Lookup(code Code) (Entry, bool) {
	for _, e := range entries() {
		if e.Code == code {
			return e, true
		}
	}
	return Entry{}, false
}

// Error is one refusal: a catalogue entry with its message formatted.
type Error struct {
	Entry
	// Text is the public message sent to the client.
	Text string
}

// New renders code's entry, formatting its message with args (the values
// its Params name; never a credential). An unknown code, which the typed
// constants make a programming error, renders as internal.
func New(code Code, args ...any) *Error {
	e, ok := Lookup(code)
	if !ok {
		e, _ = Lookup(Internal)
		args = nil
	}
	text := e.Message
	if len(e.Params) > 0 {
		text = fmt.Sprintf(e.Message, args...)
	}
	return &Error{Entry: e, Text: text}
}

// Error returns the code, so a refusal can travel as an error value.
func (e *Error) Error() string { return string(e.Code) }

// Header is one response header.
type Header struct{ Name, Value string }

// Headers returns the response headers of the refusal: content type, AWS
// error type, tenantgate code, and the 401 challenge and retry-after where
// the entry sets them.
func (e *Error) Headers() []Header {
	h := []Header{
		{HeaderContentType, ContentTypeJSON},
		{HeaderErrorType, string(e.Type)},
		{HeaderCode, string(e.Code)},
	}
	if e.Challenge != "" {
		h = append(h, Header{HeaderWWWAuthenticate, e.Challenge})
	}
	if e.RetryAfter != "" {
		h = append(h, Header{HeaderRetryAfter, e.RetryAfter})
	}
	return h
}

// body is the JSON error document; field order is the wire order.
type body struct {
	Type    Type   `json:"__type"`
	Message string `json:"message"`
	Error   Code   `json:"error"`
}

// Body returns the JSON body {"__type","message","error"}.
func (e *Error) Body() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body{Type: e.Type, Message: e.Text, Error: e.Code}); err != nil { // strings only: cannot happen
		return []byte(`{"__type":"InternalServerException","message":"internal error","error":"internal"}`)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
