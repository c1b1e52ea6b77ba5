package extauthz

import (
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tenantgate/tenantgate/internal/apikey"
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
// token, counts as absent. A Bearer token of API-key shape is an API key
// (clients configured only by environment, such as AWS_BEARER_TOKEN_BEDROCK,
// can send nothing else) when API keys are on, and is then verified exactly
// like the API key header. The query token is only looked at when enabled.
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
					if auth.APIKeys.On() && apikey.IsKey(tok) {
						return credential{kind: config.CredentialAPIKey, value: tok}, true
					}
					return credential{kind: kind, value: tok}, true
				}
			}
		case config.CredentialQueryToken:
			if !auth.QueryToken.Enabled {
				continue
			}
			if vals := scanQuery(r.path, auth.QueryToken.Param).values; len(vals) > 0 {
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

// queryScan is what a query string says about the token parameter, read the
// way Envoy's query_parameters_to_remove matches names: raw, undecoded and
// case-sensitive. Only a parameter named exactly param is used (and removed
// by Envoy); one whose name merely decodes or case-folds to param would be
// forwarded upstream by Envoy, so it is reported as disguised.
type queryScan struct {
	values    []string // decoded non-empty values of the raw-named occurrences
	present   bool     // param occurs under its raw name, with any value
	disguised bool     // a differently spelled name decodes or case-folds to param
}

// scanQuery splits the query of path on "&" and each pair at its first "="
// (as Envoy does) and reads the occurrences of param. Values whose encoding
// is broken are skipped; the pair is still present.
func scanQuery(path, param string) queryScan {
	var s queryScan
	_, q, ok := strings.Cut(path, "?")
	if !ok || param == "" {
		return s
	}
	for _, pair := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if k != param {
			if disguisedName(k, param) {
				s.disguised = true
			}
			continue
		}
		s.present = true
		if val, err := url.QueryUnescape(v); err == nil && val != "" {
			s.values = append(s.values, val)
		}
	}
	return s
}

// disguisedName reports whether the raw name k, though not param itself,
// names param once percent-decoded or case-folded.
func disguisedName(k, param string) bool {
	if strings.EqualFold(k, param) {
		return true
	}
	key, err := url.QueryUnescape(k)
	return err == nil && strings.EqualFold(key, param)
}
