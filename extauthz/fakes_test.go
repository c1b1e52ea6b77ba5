package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/jwtverify"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

const (
	userA     = "11111111-1111-4111-8111-111111111111"
	userB     = "22222222-2222-4222-8222-222222222222"
	userC     = "33333333-3333-4333-8333-333333333333" // no personal account
	userOwner = "44444444-4444-4444-8444-444444444444"
	userDown  = "55555555-5555-4555-8555-555555555555" // personal lookup fails
	acctA     = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa" // userA personal, tier_2_20
	acctB     = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb" // userB personal, no plan row
	acctTeam  = "cccccccc-cccc-4ccc-8ccc-cccccccccccc" // team, enterprise, owner userOwner, member userA
	acctBroke = "dddddddd-dddd-4ddd-8ddd-dddddddddddd" // team, balance 0, member userA
	acctDown  = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee" // every lookup fails
	acctNone  = "ffffffff-ffff-4fff-8fff-ffffffffffff" // does not exist

	modelHaiku  = "anthropic.claude-3-haiku-20240307-v1:0"
	pathHaiku   = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	pathSonnet  = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
	pathList    = "/async-invoke"
	pathUnknown = "/foundation-models"

	// Well-formed keys (the shape apikey.Parse accepts), so that they are
	// also recognised in the bearer slot.
	keyGood    = "pk_goodgoodgoodgoodgoodgoodgoodgood:sk_secretsecretsecretsecretsecretse"
	keyOrphan  = "pk_orphanorphanorphanorphanorphan12:sk_secretsecretsecretsecretsecretse"
	keyRevoked = "pk_revokedrevokedrevokedrevokedrevo:sk_secretsecretsecretsecretsecretse"
	keyExpired = "pk_expiredexpiredexpiredexpiredexpi:sk_secretsecretsecretsecretsecretse"
	keyDown    = "pk_downdowndowndowndowndowndowndown:sk_secretsecretsecretsecretsecretse"
	keyUnknown = "pk_unknownunknownunknownunknownunkn:sk_secretsecretsecretsecretsecretse"
)

var errDown = errors.New("connection refused")

type fakeVerifier struct{ tokens map[string]jwtverify.Claims }

func (f fakeVerifier) Verify(ctx context.Context, token string) (jwtverify.Claims, error) {
	switch token {
	case "tok-down":
		return jwtverify.Claims{}, fmt.Errorf("jwks fetch: %w", jwtverify.ErrUnavailable)
	case "tok-weird":
		return jwtverify.Claims{}, errors.New("unexpected")
	case "tok-expired":
		return jwtverify.Claims{}, fmt.Errorf("verify: %w", &jwtverify.ExpiredError{ExpiresAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))})
	}
	c, ok := f.tokens[token]
	if !ok {
		return jwtverify.Claims{}, fmt.Errorf("%w: bad signature", jwtverify.ErrInvalidToken)
	}
	return c, nil
}

func newFakeVerifier() fakeVerifier {
	return fakeVerifier{tokens: map[string]jwtverify.Claims{
		"tok-a":     {Subject: userA, Role: "authenticated"},
		"tok-b":     {Subject: userB, Role: "authenticated"},
		"tok-c":     {Subject: userC, Role: "authenticated"},
		"tok-udown": {Subject: userDown, Role: "authenticated"},
		"tok-nosub": {Role: "authenticated"},
		"tok-anon":  {Subject: userA, Role: "anon"},
		"tok-svc":   {Subject: userA, Role: "service_role"},
	}}
}

type fakeKeys struct{}

func (fakeKeys) Authenticate(ctx context.Context, header string) (tenant.APIKey, error) {
	switch header {
	case keyGood:
		return tenant.APIKey{KeyID: "k1", AccountID: acctTeam, Status: tenant.KeyActive}, nil
	case keyOrphan:
		return tenant.APIKey{KeyID: "k2", AccountID: acctNone, Status: tenant.KeyActive}, nil
	case keyRevoked:
		return tenant.APIKey{}, apikey.ErrRevoked
	case keyExpired:
		return tenant.APIKey{}, fmt.Errorf("check: %w", apikey.ErrExpired)
	case keyDown:
		return tenant.APIKey{}, fmt.Errorf("query api_keys: %w", errDown)
	}
	if len(header) < 10 {
		return tenant.APIKey{}, apikey.ErrMalformed
	}
	return tenant.APIKey{}, apikey.ErrInvalid
}

type fakeDir struct {
	mu    sync.Mutex
	calls []string
}

func (d *fakeDir) record(s string) {
	d.mu.Lock()
	d.calls = append(d.calls, s)
	d.mu.Unlock()
}

func ptr(f float64) *float64 { return &f }

var accounts = map[string]tenant.Account{
	acctA:     {ID: acctA, PrimaryOwnerUserID: userA, Personal: true},
	acctB:     {ID: acctB, PrimaryOwnerUserID: userB, Personal: true},
	acctTeam:  {ID: acctTeam, PrimaryOwnerUserID: userOwner},
	acctBroke: {ID: acctBroke, PrimaryOwnerUserID: userOwner},
}

func (d *fakeDir) PersonalAccount(ctx context.Context, user string) (tenant.Account, error) {
	d.record("personal:" + user)
	switch user {
	case userA:
		return accounts[acctA], nil
	case userB:
		return accounts[acctB], nil
	case userDown:
		return tenant.Account{}, errDown
	}
	return tenant.Account{}, tenant.ErrNotFound
}

func (d *fakeDir) Account(ctx context.Context, id string) (tenant.Account, error) {
	d.record("account:" + id)
	if id == acctDown {
		return tenant.Account{}, errDown
	}
	a, ok := accounts[id]
	if !ok {
		return tenant.Account{}, tenant.ErrNotFound
	}
	return a, nil
}

func (d *fakeDir) Membership(ctx context.Context, acct, user string) (tenant.Role, error) {
	d.record("member:" + acct + ":" + user)
	if acct == acctDown {
		return "", errDown
	}
	switch {
	case acct == acctTeam && user == userOwner, acct == acctA && user == userA, acct == acctB && user == userB:
		return tenant.RoleOwner, nil
	case acct == acctTeam && user == userA, acct == acctBroke && user == userA:
		return tenant.RoleMember, nil
	}
	return "", tenant.ErrNotFound
}

func (d *fakeDir) Plan(ctx context.Context, acct string) (tenant.Plan, error) {
	d.record("plan:" + acct)
	switch acct {
	case acctA:
		return tenant.Plan{Tier: "tier_2_20", Balance: ptr(12.5)}, nil
	case acctTeam:
		return tenant.Plan{Tier: "tier_200_1000", Balance: ptr(1000)}, nil
	case acctBroke:
		return tenant.Plan{Tier: "tier_2_20", Balance: ptr(0)}, nil
	case acctDown:
		return tenant.Plan{}, errDown
	}
	return tenant.Plan{Tier: tenant.NoTier}, nil
}

// testConfig returns a fully defaulted configuration with API keys on.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
auth:
  api_keys:
    secret: "0123456789abcdef0123456789abcdef"
plans:
  models:
    tier_2_20: ["anthropic.claude-3-haiku-*", "amazon.*"]
    tier_200_1000: ["*"]
`), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

type harness struct {
	srv  *Server
	dir  *fakeDir
	reg  *prometheus.Registry
	logs *bytes.Buffer
}

func newHarness(t testing.TB, mutate func(*config.Config), getenv func(string) string) *harness {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(cfg)
	}
	h := &harness{dir: &fakeDir{}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	srv, err := New(Options{
		Auth: cfg.Auth, Plans: cfg.Plans, Service: cfg.Service,
		Logger:     slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: h.reg,
		Getenv:     getenv,
	}, newFakeVerifier(), fakeKeys{}, h.dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	return h
}

// envoyRequest builds a CheckRequest the way Envoy's ext_authz filter does.
func envoyRequest(method, path string, hdrs map[string]string, principal string) *authv3.CheckRequest {
	all := map[string]string{
		":method": method, ":path": path, ":authority": "bedrock.gateway.example",
		":scheme": "https", "x-request-id": "req-123", "content-type": "application/json",
	}
	for k, v := range hdrs {
		all[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: principal},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "envoy-id", Method: method, Path: path, Host: "bedrock.gateway.example",
			Scheme: "https", Protocol: "HTTP/1.1", Headers: all,
		}},
	}}
}

// verdict is a CheckResponse decoded for assertions.
type verdict struct {
	status      int // 200 when allowed
	grpcCode    int32
	code        apierror.Code
	awsType     string // the body's __type
	message     string
	headers     map[string]string
	actions     map[string]corev3.HeaderValueOption_HeaderAppendAction
	removeHdrs  []string
	removeQuery []string
	id          identity.Identity
	raw         string
}

func decode(t testing.TB, resp *authv3.CheckResponse) verdict {
	t.Helper()
	v := verdict{headers: map[string]string{}, actions: map[string]corev3.HeaderValueOption_HeaderAppendAction{}, raw: resp.String()}
	v.grpcCode = resp.GetStatus().GetCode()
	collect := func(hs []*corev3.HeaderValueOption) {
		for _, h := range hs {
			k := h.GetHeader().GetKey()
			if _, dup := v.headers[k]; dup {
				t.Errorf("header %q set twice", k)
			}
			v.headers[k] = h.GetHeader().GetValue()
			v.actions[k] = h.GetAppendAction()
			if len(h.GetHeader().GetRawValue()) > 0 {
				t.Errorf("header %q uses raw_value; Envoy's ext_authz reads value", k)
			}
		}
	}
	switch r := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		v.status = 200
		collect(r.OkResponse.GetHeaders())
		v.removeHdrs = r.OkResponse.GetHeadersToRemove()
		v.removeQuery = r.OkResponse.GetQueryParametersToRemove()
		id, err := identity.FromStruct(resp.GetDynamicMetadata())
		if err != nil {
			t.Fatalf("metadata: %v", err)
		}
		v.id = id
	case *authv3.CheckResponse_DeniedResponse:
		v.status = int(r.DeniedResponse.GetStatus().GetCode())
		collect(r.DeniedResponse.GetHeaders())
		var body struct {
			Type    string `json:"__type"`
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(r.DeniedResponse.GetBody()), &body); err != nil {
			t.Fatalf("denied body %q: %v", r.DeniedResponse.GetBody(), err)
		}
		v.code, v.awsType, v.message = apierror.Code(body.Error), body.Type, body.Message
		if resp.GetDynamicMetadata() != nil {
			t.Error("denied response carries identity metadata")
		}
	default:
		t.Fatalf("response has no http_response: %v", resp)
	}
	return v
}

func testRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
