package apierror

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// statusesOf is the HTTP statuses each AWS type may be answered with:
// client-fault types with 4xx, server-fault types with 5xx, credential
// types with 401 only.
var statusesOf = map[Type][]int{
	AccessDeniedException:               {403},
	ValidationException:                 {400, 413},
	ThrottlingException:                 {429},
	ServiceQuotaExceededException:       {400, 403, 429},
	ServiceUnavailableException:         {503},
	ResourceNotFoundException:           {404},
	UnknownOperationException:           {404},
	InternalServerException:             {500, 502},
	ExpiredTokenException:               {401},
	UnrecognizedClientException:         {401},
	MissingAuthenticationTokenException: {401},
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

func TestCatalogueEntries(t *testing.T) {
	seen := map[Code]bool{}
	for _, e := range All() {
		t.Run(string(e.Code), func(t *testing.T) {
			if !snake.MatchString(string(e.Code)) {
				t.Errorf("code %q is not snake_case", e.Code)
			}
			if seen[e.Code] {
				t.Errorf("code %q listed twice", e.Code)
			}
			seen[e.Code] = true
			allowed, ok := statusesOf[e.Type]
			switch {
			case e.Type == "":
				t.Error("no AWS type")
			case !ok:
				t.Errorf("type %q has no status rule in this test", e.Type)
			case !slices.Contains(allowed, e.Status):
				t.Errorf("status %d with type %s, want one of %v", e.Status, e.Type, allowed)
			}
			if e.Message == "" || e.Meaning == "" {
				t.Errorf("message %q / meaning %q missing", e.Message, e.Meaning)
			}
			if (e.Status == 401) != (e.Challenge != "") {
				t.Errorf("status %d with WWW-Authenticate %q: every 401 and only a 401 has a challenge", e.Status, e.Challenge)
			}
			if (e.Status == 503 || e.Status == 429) && e.RetryAfter == "" {
				t.Errorf("status %d without retry-after", e.Status)
			}
			if e.RetryAfter != "" {
				if n, err := strconv.Atoi(e.RetryAfter); err != nil || n <= 0 {
					t.Errorf("retry-after %q is not a positive number of seconds", e.RetryAfter)
				}
			}
			if !slices.Contains([]string{srcAuthz, srcProc, srcBoth, srcAll, srcEnvoy}, e.Source) {
				t.Errorf("source %q", e.Source)
			}
			// The message takes exactly the values its Params name.
			args := make([]any, len(e.Params))
			for i := range args {
				args[i] = 7
			}
			text := New(e.Code, args...).Text
			if strings.Contains(text, "%!") || (len(e.Params) == 0 && strings.Contains(e.Message, "%")) {
				t.Errorf("message %q does not take params %v: %q", e.Message, e.Params, text)
			}
		})
	}
}

// TestEveryCodeCatalogued parses this package's source: each Code constant
// has an entry, so no code is answered without a status and a type.
func TestEveryCodeCatalogued(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "apierror.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []Code
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
			return true
		}
		for _, v := range vs.Values {
			if lit, ok := v.(*ast.BasicLit); ok {
				s, _ := strconv.Unquote(lit.Value)
				consts = append(consts, Code(s))
			}
		}
		return true
	})
	if len(consts) < 20 {
		t.Fatalf("found %d Code constants; the scan is broken", len(consts))
	}
	for _, c := range consts {
		if _, ok := Lookup(c); !ok {
			t.Errorf("code %q has no catalogue entry", c)
		}
	}
	if len(All()) != len(consts) {
		t.Errorf("catalogue has %d entries, source declares %d codes", len(All()), len(consts))
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		code    Code
		args    []any
		headers []Header
		body    string
	}{
		{MissingCredential, nil, []Header{
			{"content-type", "application/json"}, {"x-amzn-errortype", "MissingAuthenticationTokenException"},
			{"x-tenantgate-error", "missing_credential"}, {"www-authenticate", `Bearer realm="tenantgate"`},
		}, `{"__type":"MissingAuthenticationTokenException","message":"no credential: send Authorization: Bearer <token> or an API key","error":"missing_credential"}`},
		{TokenExpired, []any{"2026-12-02T11:00:00Z"}, []Header{
			{"content-type", "application/json"}, {"x-amzn-errortype", "ExpiredTokenException"},
			{"x-tenantgate-error", "token_expired"}, {"www-authenticate", `Bearer error="invalid_token", error_description="token expired"`},
		}, `{"__type":"ExpiredTokenException","message":"token expired at 2026-12-02T11:00:00Z; get a new access token","error":"token_expired"}`},
		{ModelNotAllowed, nil, []Header{
			{"content-type", "application/json"}, {"x-amzn-errortype", "AccessDeniedException"}, {"x-tenantgate-error", "model_not_allowed"},
		}, `{"__type":"AccessDeniedException","message":"the account's plan does not include this model","error":"model_not_allowed"}`},
		{Unavailable, nil, []Header{
			{"content-type", "application/json"}, {"x-amzn-errortype", "ServiceUnavailableException"},
			{"x-tenantgate-error", "unavailable"}, {"retry-after", "1"},
		}, `{"__type":"ServiceUnavailableException","message":"the gateway cannot decide right now; retry","error":"unavailable"}`},
		{BodyTooLarge, []any{int64(1024)}, []Header{
			{"content-type", "application/json"}, {"x-amzn-errortype", "ValidationException"}, {"x-tenantgate-error", "body_too_large"},
		}, `{"__type":"ValidationException","message":"request body exceeds 1024 bytes","error":"body_too_large"}`},
		{Code("no_such_code"), []any{"x"}, []Header{
			{"content-type", "application/json"}, {"x-amzn-errortype", "InternalServerException"}, {"x-tenantgate-error", "internal"},
		}, `{"__type":"InternalServerException","message":"internal error","error":"internal"}`},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			e := New(tt.code, tt.args...)
			if got := e.Headers(); !slices.Equal(got, tt.headers) {
				t.Errorf("headers\n got %v\nwant %v", got, tt.headers)
			}
			if got := string(e.Body()); got != tt.body {
				t.Errorf("body\n got %s\nwant %s", got, tt.body)
			}
			if !json.Valid(e.Body()) {
				t.Error("body is not JSON")
			}
			if e.Error() != string(e.Code) {
				t.Errorf("Error() = %q", e.Error())
			}
		})
	}
}
