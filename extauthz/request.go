package extauthz

import (
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tenantgate/tenantgate/internal/config"
)

// request is the part of a CheckRequest the decision reads. Header names are
// lower case; repeated headers are joined with "," as Envoy does in the
// headers map, so a duplicated credential or account header never silently
// picks one of its values.
type request struct {
	headers   map[string]string
	method    string
	path      string
	principal string // verified mTLS peer (URI SAN), "" when none
	requestID string
}

func newRequest(cr *authv3.CheckRequest) request {
	attrs := cr.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := request{headers: make(map[string]string, len(h.GetHeaders()))}
	for k, v := range h.GetHeaders() {
		r.add(k, v)
	}
	// With encode_raw_headers Envoy sends header_map instead of headers.
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		v := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		r.add(hv.GetKey(), v)
	}
	r.method = h.GetMethod()
	if r.method == "" {
		r.method = r.headers[":method"]
	}
	r.path = h.GetPath()
	if r.path == "" {
		r.path = r.headers[":path"]
	}
	r.principal = attrs.GetSource().GetPrincipal()
	r.requestID = r.headers["x-request-id"]
	if r.requestID == "" {
		r.requestID = h.GetId()
	}
	return r
}

func (r *request) add(k, v string) {
	k = strings.ToLower(k)
	if old, ok := r.headers[k]; ok {
		r.headers[k] = old + "," + v
		return
	}
	r.headers[k] = v
}

// header returns the value of a header and whether it was present.
func (r request) header(name string) (string, bool) {
	v, ok := r.headers[strings.ToLower(name)]
	return v, ok
}

// credential is the caller's credential found in the request.
type credential struct {
	kind  string // config.CredentialAPIKey, CredentialBearer or CredentialQueryToken
	value string
}

// findCredential looks for a credential in the configured order; the first
// present wins. A non-Bearer Authorization header, or a Bearer one without a
// token, counts as absent. The query token is only looked at when enabled.
func findCredential(auth config.Auth, r request) (credential, bool) {
	for _, kind := range auth.CredentialOrder {
		switch kind {
		case config.CredentialAPIKey:
			if !auth.APIKeys.On() {
				continue
			}
			if v, ok := r.header(auth.APIKeys.Header); ok && strings.TrimSpace(v) != "" {
				return credential{kind: kind, value: strings.TrimSpace(v)}, true
			}
		case config.CredentialBearer:
			if v, ok := r.header("authorization"); ok {
				if tok, ok := bearerToken(v); ok {
					return credential{kind: kind, value: tok}, true
				}
			}
		case config.CredentialQueryToken:
			if !auth.QueryToken.Enabled {
				continue
			}
			if vals := queryValues(r.path, auth.QueryToken.Param); len(vals) > 0 {
				// Several copies of the parameter are ambiguous; the
				// joined value fails verification instead of one copy
				// being picked.
				return credential{kind: kind, value: strings.Join(vals, ",")}, true
			}
		}
	}
	return credential{}, false
}

// bearerToken returns the token of an "Authorization: Bearer <token>" value;
// the scheme is case-insensitive.
func bearerToken(v string) (string, bool) {
	v = strings.TrimSpace(v)
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", false
	}
	return tok, true
}

// queryValues returns the decoded values of every occurrence of param in the
// query string of path. Pairs whose encoding is broken are skipped.
func queryValues(path, param string) []string {
	_, q, ok := strings.Cut(path, "?")
	if !ok || param == "" {
		return nil
	}
	q, _, _ = strings.Cut(q, "#")
	var out []string
	for _, pair := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil || key != param {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil || val == "" {
			continue
		}
		out = append(out, val)
	}
	return out
}

// hasQueryParam reports whether param occurs in the query string of path,
// with any value (so that it is stripped even when its value is unusable).
func hasQueryParam(path, param string) bool {
	_, q, ok := strings.Cut(path, "?")
	if !ok || param == "" {
		return false
	}
	for _, pair := range strings.Split(q, "&") {
		k, _, _ := strings.Cut(pair, "=")
		if key, err := url.QueryUnescape(k); err == nil && key == param {
			return true
		}
		if k == param {
			return true
		}
	}
	return false
}
