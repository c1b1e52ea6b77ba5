package extauthz

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// TestCheckOverGRPC calls Check through a real gRPC connection with the
// request shape Envoy's ext_authz filter sends (attributes.request.http with
// pseudo-headers; encode_raw_headers variant with header_map).
func TestCheckOverGRPC(t *testing.T) {
	h := newHarness(t, nil, nil)
	conn := stack.InProcessGRPC(t, h.srv.Register)
	client := authv3.NewAuthorizationClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// headers map, as Envoy sends by default, with a spoofed tier.
	resp, err := client.Check(ctx, envoyRequest("POST", pathHaiku,
		with(bearer("tok-a"), "x-account-id", acctTeam, "x-account-tier", "tier_150_1200", "x-enterprise", "false"), ""))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	assertVerdict(t, decode(t, resp), allowed(acctTeam, userA, "tier_200_1000", "member", true, "jwt"))

	// encode_raw_headers: header_map with raw_value bytes, no headers map.
	raw := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: pathSonnet, Host: "gw",
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":method", RawValue: []byte("POST")},
				{Key: ":path", RawValue: []byte(pathSonnet)},
				{Key: ":authority", RawValue: []byte("gw")},
				{Key: "authorization", RawValue: []byte("Bearer tok-a")},
				{Key: "x-request-id", RawValue: []byte("raw-1")},
			}},
		}},
	}}
	resp, err = client.Check(ctx, raw)
	if err != nil {
		t.Fatalf("Check raw: %v", err)
	}
	assertVerdict(t, decode(t, resp), denied(403, apierror.ModelNotAllowed))

	// A duplicated authorization header in header_map is joined, not picked.
	raw.Attributes.Request.Http.Path = pathHaiku
	raw.Attributes.Request.Http.HeaderMap.Headers = append(raw.Attributes.Request.Http.HeaderMap.Headers,
		&corev3.HeaderValue{Key: "authorization", RawValue: []byte("Bearer tok-b")})
	resp, err = client.Check(ctx, raw)
	if err != nil {
		t.Fatalf("Check dup: %v", err)
	}
	assertVerdict(t, decode(t, resp), denied(401, apierror.InvalidToken))

	// Denials are carried in the response; the RPC itself succeeds.
	resp, err = client.Check(ctx, envoyRequest("POST", pathHaiku, nil, ""))
	if err != nil {
		t.Fatalf("Check anonymous: %v", err)
	}
	assertVerdict(t, decode(t, resp), denied(401, apierror.MissingCredential))
}
