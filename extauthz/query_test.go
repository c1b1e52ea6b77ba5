package extauthz

import (
	"context"
	"testing"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/config"
)

// Envoy's query_parameters_to_remove matches names raw (undecoded), so the
// token is only read from the raw name, and a query naming the token
// parameter in any other spelling (percent-encoded, other case) is refused:
// Envoy would forward that parameter, and whatever it carries, upstream.
func TestCheckQueryTokenRawNamesOnly(t *testing.T) {
	on := func(c *config.Config) { c.Auth.QueryToken.Enabled = true }
	custom := func(c *config.Config) { c.Auth.QueryToken.Enabled = true; c.Auth.QueryToken.Param = "access_token" }
	queryOK := allowed(acctA, userA, "tier_2_20", "owner", false, "query_token")
	bearerOK := allowed(acctA, userA, "tier_2_20", "owner", false, "jwt")
	refused := denied(401, apierror.EncodedQueryToken)
	cases := []checkCase{
		{name: "raw name", mutate: on, path: pathHaiku + "?token=tok-a", want: queryOK},
		{name: "raw name without value, bearer", mutate: on, path: pathHaiku + "?token&a=1", headers: bearer("tok-a"), want: bearerOK},
		{name: "value percent-encoded is fine", mutate: on, path: pathHaiku + "?token=tok%2Da", want: queryOK},
		{name: "encoded first letter", mutate: on, path: pathHaiku + "?%74oken=tok-a", want: refused},
		{name: "encoded last letter", mutate: on, path: pathHaiku + "?a=1&toke%6E=tok-a", want: refused},
		{name: "encoded upper-case hex", mutate: on, path: pathHaiku + "?%74%6F%6B%65%6E=tok-a", want: refused},
		{name: "encoded with bearer present", mutate: on, path: pathHaiku + "?%74oken=tok-b", headers: bearer("tok-a"), want: refused},
		{name: "encoded next to raw", mutate: on, path: pathHaiku + "?token=tok-a&%74oken=tok-a", want: refused},
		{name: "encoded without value", mutate: on, path: pathHaiku + "?%74oken", headers: bearer("tok-a"), want: refused},
		{name: "upper case", mutate: on, path: pathHaiku + "?TOKEN=tok-a", want: refused},
		{name: "mixed case with bearer", mutate: on, path: pathHaiku + "?Token=tok-b", headers: bearer("tok-a"), want: refused},
		{name: "custom param encoded underscore", mutate: custom, path: pathHaiku + "?access%5Ftoken=tok-a", want: refused},
		{name: "custom param raw", mutate: custom, path: pathHaiku + "?access_token=tok-a", want: queryOK},
		{name: "other names containing token", mutate: on, method: "GET", path: pathList + "?nextToken=abc&tokens=1", headers: bearer("tok-a"), want: bearerOK},
		{name: "broken encoding is not the name", mutate: on, path: pathHaiku + "?%7oken=x", headers: bearer("tok-a"), want: bearerOK},
		{name: "disabled: encoded name ignored", path: pathHaiku + "?%74oken=tok-a", want: denied(401, apierror.MissingCredential)},
	}
	runCases(t, cases, nil)
}

// TestCheckQueryTokenRemovedByRawName checks the name handed to Envoy for
// removal is the raw one it will match.
func TestCheckQueryTokenRemovedByRawName(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Auth.QueryToken.Enabled = true }, nil)
	for _, path := range []string{pathHaiku + "?token=tok-a", pathHaiku + "?a=1&token"} {
		resp, err := h.srv.Check(context.Background(), envoyRequest("POST", path, bearer("tok-a"), ""))
		if err != nil {
			t.Fatal(err)
		}
		v := decode(t, resp)
		if v.status != 200 || len(v.removeQuery) != 1 || v.removeQuery[0] != "token" {
			t.Errorf("%s: status %d, query_parameters_to_remove %v, want 200 and [token]", path, v.status, v.removeQuery)
		}
	}
}
