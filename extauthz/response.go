package extauthz

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/identity"
)

// codeOK labels allowed decisions in metrics and logs; every refusal is
// labelled with its apierror code.
const codeOK = "ok"

// denial is a refused request: the catalogued HTTP answer Envoy sends to the
// client, and its cause for the logs.
type denial struct {
	*apierror.Error
	err error // cause, for logs only; never sent to the client
}

// deny refuses with code's catalogue entry; args are the non-secret values
// its message formats.
func deny(code apierror.Code, args ...any) *denial {
	return &denial{Error: apierror.New(code, args...)}
}

func (d *denial) withErr(err error) *denial {
	c := *d
	c.err = err
	return &c
}

func unavailable(err error) *denial {
	return deny(apierror.Unavailable).withErr(err)
}

func (d *denial) grpcCode() codes.Code {
	switch d.Status {
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
	var hdrs []*corev3.HeaderValueOption
	for _, h := range d.Headers() {
		hdrs = append(hdrs, header(h.Name, h.Value))
	}
	return &authv3.CheckResponse{
		Status: status.New(d.grpcCode(), string(d.Code)).Proto(),
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
			Headers: hdrs,
			Body:    string(d.Body()),
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
