// Package sts is a fake AWS STS Query API endpoint serving AssumeRole. It
// verifies SigV4 (service "sts") against the shared credential registry,
// enforces configured roles (ExternalId, allowed principals, max session
// duration) and AWS's parameter validation, issues temporary credentials
// into the registry, answers in AWS's XML formats, records every call and
// supports fault injection.
package sts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	"github.com/tenantgate/tenantgate/internal/fakeaws/fault"
	"github.com/tenantgate/tenantgate/internal/fakeaws/sigv4verify"
)

const xmlns = "https://sts.amazonaws.com/doc/2011-06-15/"

// Role is an assumable IAM role.
type Role struct {
	// ARN is arn:aws:iam::ACCOUNT:role/[PATH/]NAME.
	ARN string `yaml:"arn" json:"arn"`
	// ExternalID, when set, must be passed as ExternalId.
	ExternalID string `yaml:"external_id" json:"external_id"`
	// MaxSessionDuration bounds DurationSeconds; zero means one hour.
	MaxSessionDuration time.Duration `yaml:"max_session_duration" json:"max_session_duration"`
	// Principals may assume the role; empty means any long-term
	// (non-session) credential known to the registry.
	Principals []string `yaml:"principals" json:"principals"`
	// TagSession is the trust policy's sts:TagSession for the principals:
	// without it an AssumeRole carrying session tags is AccessDenied, as
	// in AWS.
	TagSession bool `yaml:"tag_session" json:"tag_session"`
	// SetSourceIdentity is the trust policy's sts:SetSourceIdentity: without
	// it an AssumeRole carrying SourceIdentity is AccessDenied.
	SetSourceIdentity bool `yaml:"set_source_identity" json:"set_source_identity"`
}

// Config configures the fake STS.
type Config struct {
	// Credentials is the shared registry (required).
	Credentials *credstore.Store
	// Roles that exist.
	Roles []Role
	// Regions accepted in the credential scope; empty accepts any.
	Regions []string
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxSkew is the allowed signing clock skew; zero means 5 minutes.
	MaxSkew time.Duration
	// Faults; nil means a private injector.
	Faults *fault.Injector
}

// Tag is a session tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Call is one recorded AssumeRole request.
type Call struct {
	Time            time.Time `json:"time"`
	RequestID       string    `json:"request_id"`
	Region          string    `json:"region"`
	RoleARN         string    `json:"role_arn"`
	RoleSessionName string    `json:"role_session_name"`
	ExternalID      string    `json:"external_id"`
	DurationSeconds int       `json:"duration_seconds"`
	Tags            []Tag     `json:"tags"`
	// SourceIdentity is the SourceIdentity parameter ("" when absent).
	SourceIdentity string `json:"source_identity,omitempty"`
	// Principal is the caller's ARN (empty when authentication failed).
	Principal      string `json:"principal"`
	CallerKeyID    string `json:"caller_access_key_id"`
	IssuedKeyID    string `json:"issued_access_key_id,omitempty"`
	ErrorCode      string `json:"error_code,omitempty"`
	HTTPStatusCode int    `json:"http_status"`
}

// Server is the fake STS HTTP handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	verifier *sigv4verify.Verifier
	roles    map[string]Role
	faults   *fault.Injector

	mu    sync.Mutex
	calls []Call
	count map[string]int
}

var roleARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})$`)

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("sts: Credentials registry is required")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, roles: map[string]Role{}, faults: cfg.Faults, count: map[string]int{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.faults == nil {
		s.faults = &fault.Injector{}
	}
	for _, r := range cfg.Roles {
		if !roleARNRe.MatchString(r.ARN) {
			return nil, fmt.Errorf("sts: invalid role ARN %q", r.ARN)
		}
		if r.MaxSessionDuration == 0 {
			r.MaxSessionDuration = time.Hour
		}
		if r.MaxSessionDuration < 15*time.Minute || r.MaxSessionDuration > 12*time.Hour {
			return nil, fmt.Errorf("sts: role %s: max session duration %v outside 15m..12h", r.ARN, r.MaxSessionDuration)
		}
		s.roles[r.ARN] = r
	}
	s.verifier = &sigv4verify.Verifier{Service: "sts", Credentials: cfg.Credentials, Now: s.now, MaxSkew: cfg.MaxSkew}
	return s, nil
}

// Faults returns the server's fault injector.
func (s *Server) Faults() *fault.Injector { return s.faults }

// Calls returns a copy of the recorded AssumeRole calls.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallCount returns how many AssumeRole calls named roleARN (successful or not).
func (s *Server) CallCount(roleARN string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[roleARN]
}

// ResetCalls forgets recorded calls and counts.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.count = map[string]int{}
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	if c.RoleARN != "" {
		s.count[c.RoleARN]++
	}
}

// apiError is an STS error response.
type apiError struct {
	status  int
	typ     string // Sender / Receiver
	code    string
	message string
}

func senderErr(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, typ: "Sender", code: code, message: fmt.Sprintf(format, args...)}
}

func validationErr(format string, args ...any) *apiError {
	return senderErr(http.StatusBadRequest, "ValidationError", format, args...)
}

type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func writeError(w http.ResponseWriter, reqID string, e *apiError) {
	var r errorResponse
	r.Xmlns = xmlns
	r.Error.Type, r.Error.Code, r.Error.Message = e.typ, e.code, e.message
	r.RequestID = reqID
	writeXML(w, e.status, reqID, r)
}

func writeXML(w http.ResponseWriter, status int, reqID string, v any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", reqID)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func authError(k sigv4verify.Kind, msg string) *apiError {
	switch k {
	case sigv4verify.KindMissingAuth:
		return senderErr(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
	case sigv4verify.KindIncomplete:
		return senderErr(http.StatusBadRequest, "IncompleteSignature", "%s", msg)
	case sigv4verify.KindUnknownKey, sigv4verify.KindInvalidToken:
		return senderErr(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
	case sigv4verify.KindExpiredToken:
		return senderErr(http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
	default: // mismatch, expired signature
		return senderErr(http.StatusForbidden, "SignatureDoesNotMatch", "%s", msg)
	}
}

// ServeHTTP implements the Query API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := credstore.RequestID()
	switch s.faults.Apply(r.Context()) {
	case fault.Drop:
		fault.DropConnection(w)
		return
	case fault.Unavailable:
		writeError(w, reqID, &apiError{status: http.StatusServiceUnavailable, typ: "Receiver", code: "ServiceUnavailable", message: "Service is unavailable. Please try again later."})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, reqID, senderErr(http.StatusBadRequest, "InvalidRequest", "request body could not be read"))
		return
	}
	call := Call{Time: s.now().UTC(), RequestID: reqID}
	e := s.handle(r.Context(), w, r, body, &call)
	if call.RoleARN != "" || call.RoleSessionName != "" || e == nil {
		if e != nil {
			call.ErrorCode, call.HTTPStatusCode = e.code, e.status
		} else {
			call.HTTPStatusCode = http.StatusOK
		}
		s.record(call)
	}
	if e != nil {
		s.log.InfoContext(r.Context(), "sts request rejected", "request_id", reqID, "code", e.code, "role_arn", call.RoleARN, "caller_key", call.CallerKeyID)
		writeError(w, reqID, e)
	}
	if e == nil {
		s.log.InfoContext(r.Context(), "sts AssumeRole", "request_id", reqID, "role_arn", call.RoleARN, "session", call.RoleSessionName, "principal", call.Principal, "issued_key", call.IssuedKeyID)
	}
}

// handle processes the request; on success it has written the response.
func (s *Server) handle(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte, call *Call) *apiError {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return senderErr(http.StatusMethodNotAllowed, "InvalidAction", "Method %s is not supported.", r.Method)
	}
	params := url.Values{}
	if r.Method == http.MethodPost {
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
			return senderErr(http.StatusBadRequest, "InvalidAction", "Content-Type must be application/x-www-form-urlencoded.")
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return senderErr(http.StatusBadRequest, "MalformedQueryString", "The request body is not a valid form encoding.")
		}
		params = form
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return senderErr(http.StatusBadRequest, "MalformedQueryString", "The query string is not valid.")
	}
	for k, v := range q {
		params[k] = append(params[k], v...)
	}
	call.RoleARN = params.Get("RoleArn")
	call.RoleSessionName = params.Get("RoleSessionName")
	call.ExternalID = params.Get("ExternalId")
	call.Tags = parseTags(params)
	call.SourceIdentity = params.Get("SourceIdentity")

	// Authenticate.
	region := ""
	if a, perr := sigv4verify.ParseAuthorization(r.Header.Get("Authorization")); perr == nil {
		region = a.Region
		if len(s.cfg.Regions) > 0 && !slices.Contains(s.cfg.Regions, region) {
			region = s.cfg.Regions[0]
		}
	}
	call.Region = region
	res, verr := s.verifier.Verify(ctx, sigv4verify.FromHTTP(r, body), region)
	if verr != nil {
		var ve *sigv4verify.Error
		if errors.As(verr, &ve) {
			if ve.Kind == sigv4verify.KindSignatureMismatch && ve.CanonicalRequest != "" {
				s.log.DebugContext(ctx, "sts signature mismatch", "canonical_request", ve.CanonicalRequest)
			}
			return authError(ve.Kind, ve.Message)
		}
		return senderErr(http.StatusForbidden, "SignatureDoesNotMatch", "signature verification failed")
	}
	call.Principal = res.Credential.PrincipalARN
	call.CallerKeyID = res.Credential.AccessKeyID

	action := params.Get("Action")
	if action == "" {
		return senderErr(http.StatusBadRequest, "MissingAction", "Missing Action")
	}
	if v := params.Get("Version"); v != "2011-06-15" {
		return senderErr(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", action, v)
	}
	if action != "AssumeRole" {
		return senderErr(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version 2011-06-15", action)
	}
	return s.assumeRole(w, params, res, call)
}

var (
	sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]*$`)
	// sourceIdentityRe is SourceIdentity's pattern (length 2..64 apart).
	sourceIdentityRe = regexp.MustCompile(`^[\w+=,.@-]*$`)
	externalIDRe     = regexp.MustCompile(`^[\w+=,.@:/-]*$`)
	tagRe            = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

func parseTags(p url.Values) []Tag {
	type nt struct {
		n int
		t Tag
	}
	var tags []nt
	for k := range p {
		rest, ok := strings.CutPrefix(k, "Tags.member.")
		if !ok {
			continue
		}
		num, field, ok := strings.Cut(rest, ".")
		if !ok || field != "Key" {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		tags = append(tags, nt{n, Tag{Key: p.Get(k), Value: p.Get("Tags.member." + num + ".Value")}})
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].n < tags[j].n })
	out := make([]Tag, len(tags))
	for i, t := range tags {
		out[i] = t.t
	}
	return out
}

func (s *Server) assumeRole(w http.ResponseWriter, p url.Values, caller *sigv4verify.Result, call *Call) *apiError {
	var errs []string
	roleARN := p.Get("RoleArn")
	if _, ok := p["RoleArn"]; !ok {
		errs = append(errs, "Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	} else if n := utf8.RuneCountInString(roleARN); n < 20 || n > 2048 {
		errs = append(errs, fmt.Sprintf("Value '%s' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20", roleARN))
	}
	name := p.Get("RoleSessionName")
	if _, ok := p["RoleSessionName"]; !ok {
		errs = append(errs, "Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	} else {
		if !sessionNameRe.MatchString(name) {
			errs = append(errs, fmt.Sprintf("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", name))
		}
		if n := len(name); n < 2 || n > 64 {
			errs = append(errs, fmt.Sprintf("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must have length between 2 and 64", name))
		}
	}
	duration := 3600
	if ds, ok := p["DurationSeconds"]; ok {
		d, err := strconv.Atoi(ds[0])
		switch {
		case err != nil:
			return validationErr("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be an integer", ds[0])
		case d < 900:
			errs = append(errs, fmt.Sprintf("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", d))
		case d > 43200:
			errs = append(errs, fmt.Sprintf("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200", d))
		}
		duration = d
	}
	call.DurationSeconds = duration
	if ext, ok := p["ExternalId"]; ok {
		if n := len(ext[0]); n < 2 || n > 1224 {
			errs = append(errs, "Value at 'externalId' failed to satisfy constraint: Member must have length between 2 and 1224")
		} else if !externalIDRe.MatchString(ext[0]) {
			errs = append(errs, "Value at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]*")
		}
	}
	if si, ok := p["SourceIdentity"]; ok {
		if n := len(si[0]); n < 2 || n > 64 {
			errs = append(errs, fmt.Sprintf("Value '%s' at 'sourceIdentity' failed to satisfy constraint: Member must have length between 2 and 64", si[0]))
		} else if !sourceIdentityRe.MatchString(si[0]) {
			errs = append(errs, fmt.Sprintf("Value '%s' at 'sourceIdentity' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", si[0]))
		} else if strings.HasPrefix(strings.ToLower(si[0]), "aws:") {
			return validationErr("SourceIdentity cannot start with the reserved prefix aws:")
		}
	}
	if len(call.Tags) > 50 {
		errs = append(errs, "Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	seen := map[string]bool{}
	for i, t := range call.Tags {
		if n := utf8.RuneCountInString(t.Key); n < 1 || n > 128 || !tagRe.MatchString(t.Key) {
			errs = append(errs, fmt.Sprintf("Value at 'tags.%d.member.key' failed to satisfy constraint: Member must have length between 1 and 128 and satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+", i+1))
		}
		if n := utf8.RuneCountInString(t.Value); n > 256 || !tagRe.MatchString(t.Value) {
			errs = append(errs, fmt.Sprintf("Value at 'tags.%d.member.value' failed to satisfy constraint: Member must have length less than or equal to 256 and satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*", i+1))
		}
		k := strings.ToLower(t.Key)
		if strings.HasPrefix(k, "aws:") {
			return validationErr("Tag keys cannot start with the reserved prefix aws:")
		}
		if seen[k] {
			return validationErr("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
		}
		seen[k] = true
	}
	if len(errs) > 0 {
		prefix := "1 validation error detected: "
		if len(errs) > 1 {
			prefix = fmt.Sprintf("%d validation errors detected: ", len(errs))
		}
		return validationErr("%s%s", prefix, strings.Join(errs, "; "))
	}

	denied := senderErr(http.StatusForbidden, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", caller.Credential.PrincipalARN, roleARN)
	role, ok := s.roles[roleARN]
	if !ok {
		return denied
	}
	if len(role.Principals) > 0 {
		if !slices.Contains(role.Principals, caller.Credential.PrincipalARN) {
			return denied
		}
	} else if caller.Credential.Temporary() {
		return denied
	}
	if role.ExternalID != "" && p.Get("ExternalId") != role.ExternalID {
		return denied
	}
	// AWS evaluates sts:TagSession and sts:SetSourceIdentity in the same
	// trust policy and answers with AccessDenied naming the action.
	if len(call.Tags) > 0 && !role.TagSession {
		return senderErr(http.StatusForbidden, "AccessDenied", "User: %s is not authorized to perform: sts:TagSession on resource: %s", caller.Credential.PrincipalARN, roleARN)
	}
	if _, ok := p["SourceIdentity"]; ok && !role.SetSourceIdentity {
		return senderErr(http.StatusForbidden, "AccessDenied", "User: %s is not authorized to perform: sts:SetSourceIdentity on resource: %s", caller.Credential.PrincipalARN, roleARN)
	}
	if time.Duration(duration)*time.Second > role.MaxSessionDuration {
		return validationErr("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}

	m := roleARNRe.FindStringSubmatch(roleARN)
	account, roleName := m[1], m[2]
	assumedARN := "arn:aws:sts::" + account + ":assumed-role/" + roleName + "/" + name
	cred := s.cfg.Credentials.IssueTemporary(assumedARN, time.Duration(duration)*time.Second)
	call.IssuedKeyID = cred.AccessKeyID

	packed := 0
	if len(call.Tags) > 0 {
		size := 0
		for _, t := range call.Tags {
			size += len(t.Key) + len(t.Value)
		}
		packed = min(100, 1+size*100/2048)
	}
	var resp assumeRoleResponse
	resp.Xmlns = xmlns
	resp.Result.AssumedRoleUser.Arn = assumedARN
	resp.Result.AssumedRoleUser.AssumedRoleID = roleID(roleARN) + ":" + name
	resp.Result.Credentials.AccessKeyID = cred.AccessKeyID
	resp.Result.Credentials.SecretAccessKey = cred.SecretAccessKey
	resp.Result.Credentials.SessionToken = cred.SessionToken
	resp.Result.Credentials.Expiration = cred.Expiration.UTC().Format("2006-01-02T15:04:05Z")
	resp.Result.PackedPolicySize = &packed
	resp.Metadata.RequestID = call.RequestID
	writeXML(w, http.StatusOK, call.RequestID, resp)
	return nil
}

// roleID derives a stable AROA... unique id from the role ARN.
func roleID(arn string) string {
	h := sha256.Sum256([]byte(arn))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	out := []byte("AROA")
	for _, b := range h[:17] {
		out = append(out, alphabet[int(b)%len(alphabet)])
	}
	return string(out)
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		AssumedRoleUser struct {
			AssumedRoleID string `xml:"AssumedRoleId"`
			Arn           string `xml:"Arn"`
		} `xml:"AssumedRoleUser"`
		Credentials struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		} `xml:"Credentials"`
		PackedPolicySize *int `xml:"PackedPolicySize,omitempty"`
	} `xml:"AssumeRoleResult"`
	Metadata struct {
		RequestID string `xml:"RequestId"`
	} `xml:"ResponseMetadata"`
}
