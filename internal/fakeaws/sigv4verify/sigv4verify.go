// Package sigv4verify verifies AWS Signature Version 4 (AWS4-HMAC-SHA256)
// signed HTTP requests the way AWS endpoints do: it rebuilds the canonical
// request from the request exactly as received on the wire, checks the
// credential scope, the clock skew, the payload hash and the session token,
// and reports failures as classified errors that each fake service maps to
// its own AWS error codes.
package sigv4verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// TimeFormat is the layout of X-Amz-Date.
const TimeFormat = "20060102T150405Z"

// DateFormat is the layout of the credential-scope date.
const DateFormat = "20060102"

// UnsignedPayload is the x-amz-content-sha256 value for unsigned bodies.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// DefaultMaxSkew is how far X-Amz-Date may be from the server clock.
const DefaultMaxSkew = 5 * time.Minute

// Credential is a key pair known to the fake endpoint.
type Credential struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken is set for temporary (ASIA...) credentials and must be
	// presented as X-Amz-Security-Token.
	SessionToken string
	// Expiration is the end of validity of temporary credentials; zero means
	// the credential does not expire.
	Expiration time.Time
	// PrincipalARN is who the credential belongs to, e.g.
	// arn:aws:iam::123456789012:user/platform or an assumed-role ARN.
	PrincipalARN string
}

// Temporary reports whether the credential is a session credential.
func (c Credential) Temporary() bool { return c.SessionToken != "" }

// CredentialSource looks up the secret for an access key id.
type CredentialSource interface {
	LookupCredential(ctx context.Context, accessKeyID string) (Credential, bool)
}

// Kind classifies a verification failure; services map kinds to their own
// AWS error codes.
type Kind int

const (
	// KindMissingAuth: no Authorization header at all.
	KindMissingAuth Kind = iota + 1
	// KindIncomplete: the Authorization header or required headers are malformed.
	KindIncomplete
	// KindSignatureMismatch: the signature, scope, signed headers or payload
	// hash do not match.
	KindSignatureMismatch
	// KindSignatureExpired: X-Amz-Date is outside the allowed clock skew.
	KindSignatureExpired
	// KindUnknownKey: the access key id is unknown.
	KindUnknownKey
	// KindInvalidToken: the session token is missing, wrong, or presented
	// with a long-term key.
	KindInvalidToken
	// KindExpiredToken: the temporary credential has expired.
	KindExpiredToken
)

func (k Kind) String() string {
	switch k {
	case KindMissingAuth:
		return "MissingAuthenticationToken"
	case KindIncomplete:
		return "IncompleteSignature"
	case KindSignatureMismatch:
		return "SignatureDoesNotMatch"
	case KindSignatureExpired:
		return "SignatureExpired"
	case KindUnknownKey:
		return "InvalidClientTokenId"
	case KindInvalidToken:
		return "InvalidToken"
	case KindExpiredToken:
		return "ExpiredToken"
	}
	return "Unknown(" + strconv.Itoa(int(k)) + ")"
}

// Error is a verification failure. Message is safe to return to the client:
// it never contains secrets, signatures or session tokens.
type Error struct {
	Kind    Kind
	Message string
	// CanonicalRequest is the canonical request the verifier computed, with
	// the session token redacted; for debugging only, never sent to clients.
	CanonicalRequest string
}

func (e *Error) Error() string { return "sigv4: " + e.Kind.String() + ": " + e.Message }

func fail(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Request is an HTTP request as received on the wire.
type Request struct {
	Method string
	// RawPath is the request-target path exactly as received (before '?'),
	// not decoded.
	RawPath string
	// RawQuery is the query string as received (after '?').
	RawQuery string
	// Host is the Host / :authority value.
	Host string
	// Header holds the other headers; repeated headers keep their order.
	Header http.Header
	// Body is the payload actually received.
	Body []byte
}

// FromHTTP builds a Request from a server-side *http.Request and its body.
// The path and query are taken from RequestURI, i.e. as the client sent
// them, not re-encoded by net/url.
func FromHTTP(r *http.Request, body []byte) Request {
	target := r.RequestURI
	if target == "" || !strings.HasPrefix(target, "/") {
		// Client-side request or absolute-form target.
		if r.URL != nil {
			target = r.URL.EscapedPath()
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
		}
	}
	path, query, _ := strings.Cut(target, "?")
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if _, ok := h["Content-Length"]; !ok && r.ContentLength > 0 {
		h["Content-Length"] = []string{strconv.FormatInt(r.ContentLength, 10)}
	}
	return Request{Method: r.Method, RawPath: path, RawQuery: query, Host: r.Host, Header: h, Body: body}
}

// Authorization is a parsed AWS4-HMAC-SHA256 Authorization header.
type Authorization struct {
	AccessKeyID   string
	Date          string // YYYYMMDD
	Region        string
	Service       string
	Terminator    string
	SignedHeaders []string
	Signature     string
}

// Scope returns DATE/REGION/SERVICE/aws4_request.
func (a Authorization) Scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/" + a.Terminator
}

// ParseAuthorization parses an Authorization header value. Errors are of
// kind KindIncomplete or KindMissingAuth.
func ParseAuthorization(v string) (Authorization, error) {
	var a Authorization
	v = strings.TrimSpace(v)
	if v == "" {
		return a, fail(KindMissingAuth, "Missing Authentication Token")
	}
	alg, rest, _ := strings.Cut(v, " ")
	if alg != Algorithm {
		return a, fail(KindIncomplete, "Authorization header requires '%s' algorithm.", Algorithm)
	}
	var cred, signed, sig string
	var haveCred, haveSigned, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return a, fail(KindIncomplete, "Authorization header key-value pair is malformed; missing '=' sign.")
		}
		switch k {
		case "Credential":
			if haveCred {
				return a, fail(KindIncomplete, "Authorization header has duplicate 'Credential' parameter.")
			}
			cred, haveCred = val, true
		case "SignedHeaders":
			if haveSigned {
				return a, fail(KindIncomplete, "Authorization header has duplicate 'SignedHeaders' parameter.")
			}
			signed, haveSigned = val, true
		case "Signature":
			if haveSig {
				return a, fail(KindIncomplete, "Authorization header has duplicate 'Signature' parameter.")
			}
			sig, haveSig = val, true
		default:
			return a, fail(KindIncomplete, "Authorization header has an unknown parameter.")
		}
	}
	var missing []string
	if !haveCred {
		missing = append(missing, "Authorization header requires 'Credential' parameter.")
	}
	if !haveSig {
		missing = append(missing, "Authorization header requires 'Signature' parameter.")
	}
	if !haveSigned {
		missing = append(missing, "Authorization header requires 'SignedHeaders' parameter.")
	}
	if len(missing) > 0 {
		return a, fail(KindIncomplete, "%s", strings.Join(missing, " "))
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return a, fail(KindIncomplete, "Credential should be of the form <AccessKeyId>/<YYYYMMDD>/<region>/<service>/aws4_request.")
	}
	a.AccessKeyID, a.Date, a.Region, a.Service, a.Terminator = parts[0], parts[1], parts[2], parts[3], parts[4]
	if !validAccessKeyID(a.AccessKeyID) {
		return a, fail(KindIncomplete, "Credential access key id is malformed.")
	}
	if _, err := time.Parse(DateFormat, a.Date); err != nil || len(a.Date) != 8 {
		return a, fail(KindIncomplete, "Credential date is not of the form YYYYMMDD.")
	}
	if a.Region == "" || !token(a.Region) {
		return a, fail(KindIncomplete, "Credential should be scoped to a valid region.")
	}
	if a.Service == "" || !token(a.Service) {
		return a, fail(KindIncomplete, "Credential should be scoped to a valid service.")
	}
	if a.Terminator != "aws4_request" {
		return a, fail(KindIncomplete, "Credential should be scoped with a valid terminator: 'aws4_request'.")
	}
	if signed == "" {
		return a, fail(KindIncomplete, "Authorization header requires 'SignedHeaders' parameter.")
	}
	hs := strings.Split(signed, ";")
	for i, h := range hs {
		if h == "" || !headerToken(h) || strings.ToLower(h) != h {
			return a, fail(KindIncomplete, "SignedHeaders must be a ';'-separated list of lowercase header names.")
		}
		if i > 0 && hs[i-1] >= h {
			return a, fail(KindIncomplete, "SignedHeaders must be sorted and unique.")
		}
	}
	a.SignedHeaders = hs
	if len(sig) != 64 || !isLowerHex(sig) {
		return a, fail(KindIncomplete, "Signature must be 64 lowercase hexadecimal characters.")
	}
	a.Signature = sig
	return a, nil
}

func validAccessKeyID(s string) bool {
	if len(s) < 4 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func headerToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Verifier verifies requests for one service.
type Verifier struct {
	// Service is the signing name the endpoint expects, e.g. "bedrock", "sts".
	Service string
	// Credentials resolves access keys.
	Credentials CredentialSource
	// Now is the server clock; nil means time.Now.
	Now func() time.Time
	// MaxSkew is the allowed |X-Amz-Date - now|; zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// DisableNormalize keeps dot segments and repeated slashes in the
	// canonical URI (S3-style); AWS normalizes for every other service.
	DisableNormalize bool
	// AllowUnsignedPayload accepts x-amz-content-sha256: UNSIGNED-PAYLOAD.
	AllowUnsignedPayload bool
}

// Result describes a successfully verified request.
type Result struct {
	Credential          Credential
	Authorization       Authorization
	Time                time.Time
	SessionTokenPresent bool
	CanonicalRequest    string
}

// Verify checks req's signature. region is the region the endpoint serves
// for this request; the credential scope must name it. Errors are *Error.
func (v *Verifier) Verify(ctx context.Context, req Request, region string) (*Result, error) {
	authz := req.Header.Values("Authorization")
	if len(authz) == 0 {
		return nil, fail(KindMissingAuth, "Missing Authentication Token")
	}
	if len(authz) > 1 {
		return nil, fail(KindIncomplete, "Request has more than one Authorization header.")
	}
	a, err := ParseAuthorization(authz[0])
	if err != nil {
		return nil, err
	}

	// Request time.
	var reqTime time.Time
	var dateHeader string
	if xs := req.Header.Values("X-Amz-Date"); len(xs) > 0 {
		if len(xs) > 1 {
			return nil, fail(KindIncomplete, "Request has more than one X-Amz-Date header.")
		}
		t, perr := time.Parse(TimeFormat, strings.TrimSpace(xs[0]))
		if perr != nil {
			return nil, fail(KindIncomplete, "Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", printable(xs[0]))
		}
		reqTime, dateHeader = t, "x-amz-date"
	} else if ds := req.Header.Values("Date"); len(ds) > 0 {
		t, perr := http.ParseTime(strings.TrimSpace(ds[0]))
		if perr != nil {
			return nil, fail(KindIncomplete, "Date header is not a valid HTTP date.")
		}
		reqTime, dateHeader = t.UTC(), "date"
	} else {
		return nil, fail(KindIncomplete, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}

	if !contains(a.SignedHeaders, "host") {
		return nil, fail(KindSignatureMismatch, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if !contains(a.SignedHeaders, dateHeader) {
		return nil, fail(KindSignatureMismatch, "'%s' must be a 'SignedHeader' in the AWS Authorization.", dateHeader)
	}
	for _, h := range a.SignedHeaders {
		if h == "authorization" {
			return nil, fail(KindSignatureMismatch, "'Authorization' must not be a 'SignedHeader'.")
		}
		if h != "host" && len(req.Header.Values(h)) == 0 {
			return nil, fail(KindSignatureMismatch, "Signed header '%s' is missing from the request.", h)
		}
	}
	if req.Host == "" {
		return nil, fail(KindIncomplete, "Request has no Host header.")
	}

	// Credential scope.
	if a.Service != v.Service {
		return nil, fail(KindSignatureMismatch, "Credential should be scoped to correct service: '%s'.", v.Service)
	}
	if a.Region != region {
		return nil, fail(KindSignatureMismatch, "Credential should be scoped to a valid region.")
	}
	if want := reqTime.Format(DateFormat); a.Date != want {
		return nil, fail(KindSignatureMismatch, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", a.Date, want, reqTime.Format(TimeFormat))
	}

	// Clock skew.
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	skew := v.MaxSkew
	if skew == 0 {
		skew = DefaultMaxSkew
	}
	n := now().UTC()
	if d := n.Sub(reqTime); d > skew || d < -skew {
		rel := "earlier"
		bound := n.Add(-skew)
		if d < 0 {
			rel, bound = "later", n.Add(skew)
		}
		sign := "-"
		if d < 0 {
			sign = "+"
		}
		return nil, fail(KindSignatureExpired, "Signature expired: %s is now %s than %s (%s %s %d min.)",
			reqTime.Format(TimeFormat), rel, bound.Format(TimeFormat), n.Format(TimeFormat), sign, int(skew/time.Minute))
	}

	// Credentials and session token.
	cred, ok := v.Credentials.LookupCredential(ctx, a.AccessKeyID)
	if !ok {
		return nil, fail(KindUnknownKey, "The security token included in the request is invalid.")
	}
	tokens := req.Header.Values("X-Amz-Security-Token")
	if len(tokens) > 1 {
		return nil, fail(KindInvalidToken, "The security token included in the request is invalid.")
	}
	presented := ""
	if len(tokens) == 1 {
		presented = tokens[0]
	}
	if cred.Temporary() {
		if presented == "" || subtle.ConstantTimeCompare([]byte(presented), []byte(cred.SessionToken)) != 1 {
			return nil, fail(KindInvalidToken, "The security token included in the request is invalid.")
		}
		if !cred.Expiration.IsZero() && !n.Before(cred.Expiration) {
			return nil, fail(KindExpiredToken, "The security token included in the request is expired")
		}
	} else if presented != "" {
		return nil, fail(KindInvalidToken, "The security token included in the request is invalid.")
	}

	// Payload hash.
	sum := sha256.Sum256(req.Body)
	payloadHash := hex.EncodeToString(sum[:])
	if cs := req.Header.Values("X-Amz-Content-Sha256"); len(cs) > 0 {
		got := strings.TrimSpace(cs[0])
		switch {
		case len(cs) > 1:
			return nil, fail(KindSignatureMismatch, "Request has more than one x-amz-content-sha256 header.")
		case got == UnsignedPayload && v.AllowUnsignedPayload:
			payloadHash = UnsignedPayload
		case got != payloadHash:
			return nil, fail(KindSignatureMismatch, "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}

	creq := CanonicalRequest(req, a.SignedHeaders, payloadHash, !v.DisableNormalize)
	sts := StringToSign(reqTime, a.Scope(), creq)
	want := Signature(cred.SecretAccessKey, a.Date, a.Region, a.Service, sts)
	redacted := redactToken(creq, presented)
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return nil, &Error{
			Kind:             KindSignatureMismatch,
			Message:          "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
			CanonicalRequest: redacted,
		}
	}
	return &Result{
		Credential:          cred,
		Authorization:       a,
		Time:                reqTime,
		SessionTokenPresent: presented != "",
		CanonicalRequest:    redacted,
	}, nil
}

func redactToken(creq, tok string) string {
	if tok == "" {
		return creq
	}
	return strings.ReplaceAll(creq, tok, "<redacted>")
}

func printable(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CanonicalRequest builds the SigV4 canonical request.
func CanonicalRequest(req Request, signedHeaders []string, payloadHash string, normalize bool) string {
	var b strings.Builder
	b.WriteString(req.Method)
	b.WriteByte('\n')
	b.WriteString(CanonicalURI(req.RawPath, normalize))
	b.WriteByte('\n')
	b.WriteString(CanonicalQuery(req.RawQuery))
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		if h == "host" {
			b.WriteString(canonicalValue(req.Host))
		} else {
			vals := req.Header.Values(h)
			for i, v := range vals {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(canonicalValue(v))
			}
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalValue trims a header value and collapses runs of whitespace to
// one space.
func canonicalValue(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

// CanonicalURI returns the canonical URI of a raw (as received) path: for
// services other than S3 the path is normalized (dot segments removed,
// repeated slashes merged) and then URI-encoded once more, so an escaped
// "%3A" becomes "%253A".
func CanonicalURI(rawPath string, normalize bool) string {
	if rawPath == "" {
		return "/"
	}
	p := rawPath
	if normalize {
		p = normalizePath(p)
	}
	return URIEncode(p, false)
}

func normalizePath(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	res := "/" + strings.Join(out, "/")
	if len(out) > 0 && strings.HasSuffix(p, "/") {
		res += "/"
	}
	return res
}

// URIEncode percent-encodes every byte except the unreserved characters
// A-Z a-z 0-9 - _ . ~ (and '/' unless encodeSlash).
func URIEncode(s string, encodeSlash bool) string {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexUpper[c>>4])
		b.WriteByte(hexUpper[c&15])
	}
	return b.String()
}

// CanonicalQuery decodes the raw query's parameters, re-encodes names and
// values with URIEncode and sorts them by name, then value.
func CanonicalQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	type kv struct{ k, v string }
	var params []kv
	for _, part := range strings.Split(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		params = append(params, kv{URIEncode(unescape(k), true), URIEncode(unescape(v), true)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// unescape decodes %XX sequences; malformed escapes are kept literally.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// StringToSign builds the SigV4 string to sign.
func StringToSign(t time.Time, scope, canonicalRequest string) string {
	h := sha256.Sum256([]byte(canonicalRequest))
	return Algorithm + "\n" + t.UTC().Format(TimeFormat) + "\n" + scope + "\n" + hex.EncodeToString(h[:])
}

// Signature computes the hex signature of stringToSign.
func Signature(secret, date, region, service, stringToSign string) string {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, stringToSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
