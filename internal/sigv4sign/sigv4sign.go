// Package sigv4sign owns the SigV4 signature of a Bedrock runtime request as
// Envoy will forward it upstream: the raw path byte for byte, the upstream
// host, and a minimal set of headers that no proxy hop adds, removes or
// rewrites after the signature is made.
package sigv4sign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// EmptyPayloadHash is the hex SHA-256 of an empty body.
const EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Header names the signature produces.
const (
	HeaderAuthorization = "authorization"
	HeaderAmzDate       = "x-amz-date"
	HeaderSecurityToken = "x-amz-security-token"
)

// ErrBadRequest reports a request line that cannot be signed faithfully.
var ErrBadRequest = errors.New("sigv4sign: request cannot be signed")

// Signable reports whether a client header (lower-case name) is part of the
// signed set. Only headers that travel unchanged to AWS are signed: host,
// x-amz-date and x-amz-security-token (added by the signer), content-type,
// accept and the x-amzn-bedrock-* request options. Content-Length is never
// signed because Envoy may re-frame the body.
func Signable(name string) bool {
	switch name {
	case "content-type", "accept":
		return true
	}
	return strings.HasPrefix(name, "x-amzn-bedrock-")
}

// PayloadHash returns the hex SHA-256 of body.
func PayloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Request is the request exactly as it leaves Envoy.
type Request struct {
	Method string
	// Host is the upstream host (never the client's :authority).
	Host string
	// Path is Envoy's :path, raw, possibly with a query string.
	Path string
	// Header holds client headers by lower-case name; only Signable ones
	// are signed, the rest are ignored.
	Header map[string][]string
	// PayloadHash is the hex SHA-256 of the body; empty means no body.
	PayloadHash string
}

// Result holds the headers to set on the forwarded request.
type Result struct {
	Authorization string
	AmzDate       string
	// SecurityToken is set only for temporary credentials.
	SecurityToken string
	// SignedHeaders lists the signed header names, sorted.
	SignedHeaders []string
}

// Signer signs requests for one SigV4 service name.
type Signer struct {
	service string
	v4      *v4.Signer
}

// New returns a Signer for service (e.g. "bedrock").
func New(service string) *Signer {
	return &Signer{service: service, v4: v4.NewSigner()}
}

// Sign computes the signature of req with creds in region at time t.
func (s *Signer) Sign(ctx context.Context, creds aws.Credentials, region string, req Request, t time.Time) (Result, error) {
	rawPath, rawQuery, _ := strings.Cut(req.Path, "?")
	if !strings.HasPrefix(rawPath, "/") || req.Host == "" || strings.ContainsAny(req.Host, "/?#@ ") {
		return Result{}, fmt.Errorf("%w: malformed path or host", ErrBadRequest)
	}
	if strings.ContainsAny(rawPath, " #\r\n") {
		return Result{}, fmt.Errorf("%w: path characters", ErrBadRequest)
	}
	if _, err := url.ParseQuery(rawQuery); err != nil {
		return Result{}, fmt.Errorf("%w: query string: %v", ErrBadRequest, err)
	}
	// Opaque keeps the path byte for byte; the signer takes the path from
	// it and escapes it once more for the canonical request, as AWS does
	// for every service but S3.
	u := &url.URL{Scheme: "https", Opaque: "//" + req.Host + rawPath, RawQuery: rawQuery}
	hr := &http.Request{
		Method:        req.Method,
		URL:           u,
		Host:          req.Host,
		Header:        make(http.Header),
		ContentLength: 0, // a positive length would be signed as content-length
	}
	for name, vals := range req.Header {
		lname := strings.ToLower(name)
		if Signable(lname) {
			for _, v := range vals {
				if !printableASCII(v) {
					// Signers and verifiers disagree on how to fold tabs and
					// non-ASCII white space: refuse rather than guess.
					return Result{}, fmt.Errorf("%w: header %s has characters outside printable ASCII", ErrBadRequest, lname)
				}
			}
			hr.Header[http.CanonicalHeaderKey(lname)] = append(hr.Header[http.CanonicalHeaderKey(lname)], vals...)
		}
	}
	hash := req.PayloadHash
	if hash == "" {
		hash = EmptyPayloadHash
	}
	if err := s.v4.SignHTTP(ctx, creds, hr, hash, s.service, region, t); err != nil {
		return Result{}, fmt.Errorf("sigv4sign: sign: %w", err)
	}
	res := Result{
		Authorization: hr.Header.Get("Authorization"),
		AmzDate:       hr.Header.Get("X-Amz-Date"),
		SecurityToken: hr.Header.Get("X-Amz-Security-Token"),
	}
	res.SignedHeaders = append(res.SignedHeaders, "host")
	for k := range hr.Header {
		lk := strings.ToLower(k)
		if lk != "authorization" {
			res.SignedHeaders = append(res.SignedHeaders, lk)
		}
	}
	sort.Strings(res.SignedHeaders)
	return res, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
