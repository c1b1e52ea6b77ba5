package extauthz

import (
	"encoding/json"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/identity"
)

// Stable error codes of denied requests (the "error" field of the body).
const (
	CodeMissingCredential      = "missing_credential"
	CodeInvalidToken           = "invalid_token"
	CodeInvalidAPIKey          = "invalid_api_key"
	CodeAPIKeyRevoked          = "api_key_revoked"
	CodeAPIKeyExpired          = "api_key_expired"
	CodeInvalidServiceKey      = "invalid_service_key"
	CodeInvalidAccountID       = "invalid_account_id"
	CodeNotAMember             = "not_a_member"
	CodeNoPersonalAccount      = "no_personal_account"
	CodeModelNotAllowed        = "model_not_allowed"
	CodeUnknownTier            = "unknown_tier"
	CodeAnonymousUser          = "anonymous_user"
	CodeInsufficientCredits    = "insufficient_credits"
	CodeAccountRequired        = "account_required"
	CodeAccountNotFound        = "account_not_found"
	CodeEncodedQueryToken      = "encoded_query_token"
	CodeUnavailable            = "unavailable"
	codeOK                     = "ok" // metrics and logs only
	wwwAuthenticateMissing     = `Bearer realm="tenantgate"`
	wwwAuthenticateInvalidAuth = `Bearer error="invalid_token"`
)

// denial is a refused request: the HTTP answer Envoy sends to the client.
type denial struct {
	status  int
	code    string
	message string
	err     error // cause, for logs only; never sent to the client
}

func deny(status int, code, message string) *denial {
	return &denial{status: status, code: code, message: message}
}

func (d *denial) withErr(err error) *denial {
	c := *d
	c.err = err
	return &c
}

func unavailable(err error) *denial {
	return deny(503, CodeUnavailable, "authorization is temporarily unavailable").withErr(err)
}

func (d *denial) grpcCode() codes.Code {
	switch d.status {
	case 401:
		return codes.Unauthenticated
	case 503:
		return codes.Unavailable
	default:
		return codes.PermissionDenied
	}
}

func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func (d *denial) response() *authv3.CheckResponse {
	body, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{d.code, d.message})
	hdrs := []*corev3.HeaderValueOption{header("content-type", "application/json")}
	switch {
	case d.code == CodeMissingCredential:
		hdrs = append(hdrs, header("www-authenticate", wwwAuthenticateMissing))
	case d.status == 401:
		hdrs = append(hdrs, header("www-authenticate", wwwAuthenticateInvalidAuth))
	case d.status == 503:
		hdrs = append(hdrs, header("retry-after", "1"))
	}
	return &authv3.CheckResponse{
		Status: status.New(d.grpcCode(), d.code).Proto(),
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.status)},
			Headers: hdrs,
			Body:    string(body),
		}},
	}
}

// okResponse allows the request: every identity header is set to the
// verified value, overwriting whatever the client sent, and the identity is
// returned as dynamic metadata for ext_proc.
func okResponse(id identity.Identity, removeHeaders, removeQuery []string) *authv3.CheckResponse {
	vals := id.HeaderValues()
	hdrs := make([]*corev3.HeaderValueOption, 0, len(identity.Headers))
	for _, name := range identity.Headers {
		hdrs = append(hdrs, header(name, vals[name]))
	}
	return &authv3.CheckResponse{
		Status: status.New(codes.OK, "").Proto(),
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:                 hdrs,
			HeadersToRemove:         removeHeaders,
			QueryParametersToRemove: removeQuery,
		}},
		DynamicMetadata: id.Struct(),
	}
}
