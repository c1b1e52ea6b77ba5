// Package bedrock is a fake AWS Bedrock runtime endpoint. It serves one or
// more regions (chosen from the Host header), verifies SigV4 (service
// "bedrock") against the shared credential registry, answers Converse,
// ConverseStream, InvokeModel, InvokeModelWithResponseStream, CountTokens,
// ApplyGuardrail and the async-invoke operations in AWS's JSON and
// event-stream formats, and on the control-plane hosts the read-only
// inference-profile and foundation-model calls (controlplane.go), says in every answer who signed the request and
// where, records every request and supports fault injection.
package bedrock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	"github.com/tenantgate/tenantgate/internal/fakeaws/fault"
	"github.com/tenantgate/tenantgate/internal/fakeaws/sigv4verify"
)

// DefaultHostTemplate is the Host the endpoint expects; {region} is replaced.
const DefaultHostTemplate = "bedrock-runtime.{region}.amazonaws.com"

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 25 << 20

// Config configures the fake Bedrock runtime.
type Config struct {
	// Credentials is the shared registry (required).
	Credentials *credstore.Store
	// Regions served (required).
	Regions []string
	// HostTemplate maps a region to its Host; default DefaultHostTemplate.
	HostTemplate string
	// ControlHostTemplate maps a region to its control-plane Host; default
	// DefaultControlHostTemplate.
	ControlHostTemplate string
	// Models, when non-empty, are the only model ids/ARNs accepted.
	Models []string
	// DenyModels are model ids/ARNs the signing principal is not allowed to
	// call: they answer 403 AccessDeniedException naming the principal's ARN
	// (an IAM user or an assumed-role session, with its account id), as AWS
	// does when an identity policy does not allow the action.
	DenyModels []string
	// StreamDelay is the pause between streamed events; default 50ms.
	StreamDelay time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxSkew is the allowed signing clock skew; zero means 5 minutes.
	MaxSkew time.Duration
	// Faults; nil means a private injector.
	Faults *fault.Injector
}

// Record is one request as the endpoint saw it.
type Record struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Host      string    `json:"host"`
	Region    string    `json:"region"`
	Operation string    `json:"operation"`
	// ModelID is decoded (e.g. "anthropic.claude-3-haiku-20240307-v1:0").
	ModelID             string   `json:"model_id"`
	Method              string   `json:"method"`
	RawPath             string   `json:"raw_path"`
	AccessKeyID         string   `json:"access_key_id"`
	PrincipalARN        string   `json:"principal_arn"`
	SessionTokenPresent bool     `json:"session_token_present"`
	SignedHeaders       []string `json:"signed_headers"`
	// BearerAuthorization: an "Authorization: Bearer" header arrived.
	BearerAuthorization bool `json:"bearer_authorization"`
	// APIKeyHeader: an x-api-key header arrived.
	APIKeyHeader bool `json:"api_key_header"`
	// AccountIDHeader: an x-account-id header arrived.
	AccountIDHeader bool `json:"account_id_header"`
	// NonAWSHeaders lists (lowercased, sorted) headers that are neither
	// AWS/SDK headers nor standard HTTP ones.
	NonAWSHeaders []string `json:"non_aws_headers"`
	// BedrockHeaders lists (lowercased, sorted) the x-amzn-bedrock-* request
	// headers that arrived (service tier, performance config, guardrail, ...).
	BedrockHeaders []string `json:"bedrock_headers"`
	Status         int      `json:"status"`
	ErrorType      string   `json:"error_type,omitempty"`
}

type asyncJob struct {
	ARN, ModelID, ClientToken, Status string
	Submit                            time.Time
	Output                            json.RawMessage
}

// Server is the fake Bedrock runtime HTTP handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	verifier *sigv4verify.Verifier
	hosts    map[string]string // lowercase host -> region
	control  map[string]string // lowercase control-plane host -> region
	faults   *fault.Injector

	mu           sync.Mutex
	records      []Record
	throttleNext int
	cutNext      int
	jobs         []*asyncJob
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("bedrock: Credentials registry is required")
	}
	if len(cfg.Regions) == 0 {
		return nil, errors.New("bedrock: at least one region is required")
	}
	if cfg.HostTemplate == "" {
		cfg.HostTemplate = DefaultHostTemplate
	}
	if !strings.Contains(cfg.HostTemplate, "{region}") {
		return nil, fmt.Errorf("bedrock: host template %q lacks {region}", cfg.HostTemplate)
	}
	if cfg.StreamDelay == 0 {
		cfg.StreamDelay = 50 * time.Millisecond
	}
	if cfg.ControlHostTemplate == "" {
		cfg.ControlHostTemplate = DefaultControlHostTemplate
	}
	if !strings.Contains(cfg.ControlHostTemplate, "{region}") {
		return nil, fmt.Errorf("bedrock: control host template %q lacks {region}", cfg.ControlHostTemplate)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, hosts: map[string]string{}, control: map[string]string{}, faults: cfg.Faults}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.faults == nil {
		s.faults = &fault.Injector{}
	}
	for _, r := range cfg.Regions {
		if !regionRe.MatchString(r) {
			return nil, fmt.Errorf("bedrock: invalid region %q", r)
		}
		s.hosts[strings.ToLower(strings.ReplaceAll(cfg.HostTemplate, "{region}", r))] = r
		s.control[strings.ToLower(strings.ReplaceAll(cfg.ControlHostTemplate, "{region}", r))] = r
	}
	s.verifier = &sigv4verify.Verifier{Service: "bedrock", Credentials: cfg.Credentials, Now: s.now, MaxSkew: cfg.MaxSkew}
	return s, nil
}

var regionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

// Host returns the Host the endpoint expects for region.
func (s *Server) Host(region string) string {
	return strings.ReplaceAll(s.cfg.HostTemplate, "{region}", region)
}

// Faults returns the server's fault injector (latency, unavailable mode,
// fail next N with 503).
func (s *Server) Faults() *fault.Injector { return s.faults }

// ThrottleNext makes the next n requests answer 429 ThrottlingException.
func (s *Server) ThrottleNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleNext = max(n, 0)
}

// CutNextStream makes the next streaming response (ConverseStream or
// InvokeModelWithResponseStream) stop after its first `events` events: the
// connection is aborted without the remaining events, as a dropped upstream
// stream looks to the client.
func (s *Server) CutNextStream(events int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutNext = max(events, 0)
}

// Records returns a copy of the recorded requests.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// ResetRecords forgets recorded requests.
func (s *Server) ResetRecords() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
}

func (s *Server) addRecord(r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, r)
}

// RecordsHandler serves GET (JSON array of Record) and DELETE (reset).
func (s *Server) RecordsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			recs := s.Records()
			if recs == nil {
				recs = []Record{}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(recs)
		case http.MethodDelete:
			s.ResetRecords()
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "GET, DELETE")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// apiError is a Bedrock error response.
type apiError struct {
	status int
	typ    string
	msg    string
}

func errf(status int, typ, format string, args ...any) *apiError {
	return &apiError{status: status, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("x-amzn-ErrorType", e.typ)
	writeJSON(w, e.status, map[string]string{"message": e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func authError(k sigv4verify.Kind, msg string) *apiError {
	switch k {
	case sigv4verify.KindMissingAuth:
		return errf(http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
	case sigv4verify.KindIncomplete:
		return errf(http.StatusForbidden, "IncompleteSignatureException", "%s", msg)
	case sigv4verify.KindUnknownKey, sigv4verify.KindInvalidToken:
		return errf(http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
	case sigv4verify.KindExpiredToken:
		return errf(http.StatusForbidden, "ExpiredTokenException", "The security token included in the request is expired")
	default:
		return errf(http.StatusForbidden, "InvalidSignatureException", "%s", msg)
	}
}

// awsHeader reports whether a header is an AWS/SDK or standard HTTP header.
func awsHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "host", "authorization", "content-type", "content-length", "content-encoding", "accept", "accept-encoding",
		"user-agent", "connection", "te", "transfer-encoding", "expect", "keep-alive":
		return true
	}
	return strings.HasPrefix(n, "x-amz-") || strings.HasPrefix(n, "x-amzn-") || strings.HasPrefix(n, "amz-sdk-")
}

// ServeHTTP implements the Bedrock runtime API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := credstore.RequestID()
	w.Header().Set("x-amzn-RequestId", reqID)
	rec := Record{Time: s.now().UTC(), RequestID: reqID, Host: r.Host, Method: r.Method}
	rec.RawPath, _, _ = strings.Cut(sigv4verify.FromHTTP(r, nil).RawPath, "?")
	for name := range r.Header {
		if !awsHeader(name) {
			rec.NonAWSHeaders = append(rec.NonAWSHeaders, strings.ToLower(name))
		}
		if n := strings.ToLower(name); strings.HasPrefix(n, "x-amzn-bedrock-") {
			rec.BedrockHeaders = append(rec.BedrockHeaders, n)
		}
	}
	sort.Strings(rec.NonAWSHeaders)
	sort.Strings(rec.BedrockHeaders)
	for _, a := range r.Header.Values("Authorization") {
		if f := strings.Fields(a); len(f) > 0 && strings.EqualFold(f[0], "Bearer") {
			rec.BearerAuthorization = true
		}
	}
	rec.APIKeyHeader = len(r.Header.Values("X-Api-Key")) > 0
	rec.AccountIDHeader = len(r.Header.Values("X-Account-Id")) > 0

	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		// An aborted response (a dropped connection or a cut stream) is
		// recorded too, then the abort continues.
		if v := recover(); v != nil {
			rec.Status = sw.status
			rec.ErrorType = "aborted"
			s.addRecord(rec)
			panic(v)
		}
	}()
	s.serve(sw, r, &rec)
	rec.Status = sw.status
	rec.ErrorType = sw.Header().Get("x-amzn-ErrorType")
	if rec.Status == 0 {
		rec.Status = -1 // connection dropped
	}
	s.addRecord(rec)
	s.log.InfoContext(r.Context(), "bedrock request", "request_id", reqID, "region", rec.Region, "operation", rec.Operation,
		"model_id", rec.ModelID, "principal", rec.PrincipalARN, "status", rec.Status, "error_type", rec.ErrorType)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) serve(w *statusWriter, r *http.Request, rec *Record) {
	switch s.faults.Apply(r.Context()) {
	case fault.Drop:
		rc := http.NewResponseController(w.ResponseWriter)
		if conn, _, err := rc.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
		panic(http.ErrAbortHandler)
	case fault.Unavailable:
		writeError(w, errf(http.StatusServiceUnavailable, "ServiceUnavailableException", "Service Unavailable"))
		return
	}
	s.mu.Lock()
	throttle := s.throttleNext > 0
	if throttle {
		s.throttleNext--
	}
	s.mu.Unlock()
	if throttle {
		writeError(w, errf(http.StatusTooManyRequests, "ThrottlingException", "Too many requests, please wait before trying again."))
		return
	}

	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	region, ok := s.hosts[host]
	controlHost := false
	if !ok {
		region, ok = s.control[host]
		controlHost = ok
	}
	if !ok {
		writeError(w, errf(http.StatusBadRequest, "ValidationException", "The Host header does not name a Bedrock runtime endpoint served here."))
		return
	}
	rec.Region = region

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeError(w, errf(http.StatusBadRequest, "ValidationException", "The request body could not be read or is too large."))
		return
	}
	wire := sigv4verify.FromHTTP(r, body)
	p, perr := bedrockpath.Parse(r.Method, wire.RawPath+queryPart(wire.RawQuery))
	if perr == nil {
		rec.Operation, rec.ModelID = string(p.Op), p.ModelID
	}
	res, verr := s.verifier.Verify(r.Context(), wire, region)
	if verr != nil {
		var ve *sigv4verify.Error
		if !errors.As(verr, &ve) {
			writeError(w, errf(http.StatusForbidden, "InvalidSignatureException", "signature verification failed"))
			return
		}
		if ve.CanonicalRequest != "" {
			s.log.DebugContext(r.Context(), "bedrock signature mismatch", "canonical_request", ve.CanonicalRequest)
		}
		writeError(w, authError(ve.Kind, ve.Message))
		return
	}
	rec.AccessKeyID = res.Credential.AccessKeyID
	rec.PrincipalARN = res.Credential.PrincipalARN
	rec.SessionTokenPresent = res.SessionTokenPresent
	rec.SignedHeaders = res.Authorization.SignedHeaders

	if perr != nil || p.Op.ControlPlane() != controlHost {
		writeError(w, errf(http.StatusNotFound, "UnknownOperationException", "The requested operation is not recognized by the service."))
		return
	}
	if p.ModelID != "" && !controlHost && len(s.cfg.Models) > 0 && !slices.Contains(s.cfg.Models, p.ModelID) {
		writeError(w, errf(http.StatusBadRequest, "ValidationException", "The provided model identifier is invalid."))
		return
	}
	if p.ModelID != "" && slices.Contains(s.cfg.DenyModels, p.ModelID) {
		writeError(w, accessDenied(res.Credential.PrincipalARN, p, region))
		return
	}
	c := &call{s: s, w: w, r: r, body: body, region: region, principal: res.Credential.PrincipalARN, model: p.ModelID, start: s.now()}
	switch p.Op {
	case bedrockpath.Converse:
		c.converse()
	case bedrockpath.ConverseStream:
		c.converseStream()
	case bedrockpath.InvokeModel:
		c.invokeModel()
	case bedrockpath.InvokeModelWithResponseStream:
		c.invokeModelStream()
	case bedrockpath.CountTokens:
		c.countTokens()
	case bedrockpath.ApplyGuardrail:
		c.applyGuardrail(p.RawPath)
	case bedrockpath.StartAsyncInvoke:
		c.startAsync()
	case bedrockpath.ListAsyncInvokes:
		c.listAsync()
	case bedrockpath.GetAsyncInvoke:
		c.getAsync(p.RawPath)
	case bedrockpath.ListFoundationModels:
		c.listFoundationModels()
	case bedrockpath.GetFoundationModel:
		c.getFoundationModel()
	case bedrockpath.ListInferenceProfiles:
		c.listInferenceProfiles()
	case bedrockpath.GetInferenceProfile:
		c.getInferenceProfile()
	default:
		writeError(w, errf(http.StatusBadRequest, "ValidationException", "The operation %s is not supported by this endpoint.", p.Op))
	}
}

// accessDenied is AWS's answer to a principal whose identity policy does not
// allow the operation on the model: the message names the principal's ARN
// (and so its account id and role or user name) and the resource's ARN.
func accessDenied(principal string, p bedrockpath.Request, region string) *apiError {
	action := "bedrock:InvokeModel"
	if p.Op == bedrockpath.ConverseStream || p.Op == bedrockpath.InvokeModelWithResponseStream {
		action = "bedrock:InvokeModelWithResponseStream"
	}
	resource := p.ModelID
	if !strings.HasPrefix(resource, "arn:") {
		resource = "arn:aws:bedrock:" + region + "::foundation-model/" + p.ModelID
	}
	return errf(http.StatusForbidden, "AccessDeniedException",
		"User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
		principal, action, resource, action)
}

func queryPart(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

type call struct {
	s         *Server
	w         *statusWriter
	r         *http.Request
	body      []byte
	region    string
	principal string
	model     string
	start     time.Time
}

// Answer is the text every model operation returns.
func Answer(region, principal, model string) string {
	return fmt.Sprintf("Hello from fake Bedrock %s, signed by %s for model %s", region, principal, model)
}

func (c *call) answer() string { return Answer(c.region, c.principal, c.model) }

// countTokens estimates tokens as ceil(len/4) over every string in a JSON
// document (at least 1 for a non-empty document).
func countTokens(v any) int {
	n := 0
	switch t := v.(type) {
	case string:
		n += (len(t) + 3) / 4
	case []any:
		for _, x := range t {
			n += countTokens(x)
		}
	case map[string]any:
		for _, x := range t {
			n += countTokens(x)
		}
	}
	return n
}

func (c *call) jsonBody() (map[string]any, *apiError) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errf(http.StatusBadRequest, "ValidationException", "Malformed input request, please reformat your input and try again.")
	}
	return m, nil
}

// tokenUsage is a Converse usage object as AWS returns it.
type tokenUsage struct {
	in, out, cacheRead, cacheWrite int
}

// converseUsage is the Converse/ConverseStream usage member. The cache
// counts appear when the request has a cachePoint block, as on AWS.
func (u tokenUsage) converseUsage() map[string]any {
	m := map[string]any{"inputTokens": u.in, "outputTokens": u.out, "totalTokens": u.in + u.out + u.cacheRead + u.cacheWrite}
	if u.cacheRead+u.cacheWrite > 0 {
		m["cacheReadInputTokens"] = u.cacheRead
		m["cacheWriteInputTokens"] = u.cacheWrite
	}
	return m
}

// hasCachePoint reports whether a JSON document contains a cachePoint key.
func hasCachePoint(v any) bool {
	switch t := v.(type) {
	case []any:
		return slices.ContainsFunc(t, hasCachePoint)
	case map[string]any:
		if _, ok := t["cachePoint"]; ok {
			return true
		}
		for _, x := range t {
			if hasCachePoint(x) {
				return true
			}
		}
	}
	return false
}

// converseInput validates a Converse request and returns its token usage
// (the answer's output tokens included). With a cachePoint, a third of the
// counted prompt is reported read from the cache and a third written to it.
func (c *call) converseInput() (tokenUsage, *apiError) {
	m, e := c.jsonBody()
	if e != nil {
		return tokenUsage{}, e
	}
	msgs, ok := m["messages"].([]any)
	if !ok || len(msgs) == 0 {
		return tokenUsage{}, errf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null")
	}
	u := tokenUsage{in: max(1, countTokens(m)), out: max(1, countTokens(c.answer()))}
	if hasCachePoint(m) {
		u.cacheRead, u.cacheWrite = u.in/3, u.in/3
		u.in -= u.cacheRead + u.cacheWrite
	}
	return u, nil
}

func (c *call) latencyMS() int64 { return max(1, c.s.now().Sub(c.start).Milliseconds()) }

func (c *call) converse() {
	u, e := c.converseInput()
	if e != nil {
		writeError(c.w, e)
		return
	}
	text := c.answer()
	writeJSON(c.w, http.StatusOK, map[string]any{
		"output": map[string]any{"message": map[string]any{
			"role":    "assistant",
			"content": []any{map[string]any{"text": text}},
		}},
		"stopReason": "end_turn",
		"usage":      u.converseUsage(),
		"metrics":    map[string]any{"latencyMs": c.latencyMS()},
	})
}

// pieces splits the answer into several stream deltas.
func pieces(text string) []string {
	words := strings.SplitAfter(text, " ")
	var out []string
	for i := 0; i < len(words); i += 3 {
		out = append(out, strings.Join(words[i:min(i+3, len(words))], ""))
	}
	return out
}

type streamer struct {
	c   *call
	enc *eventstream.Encoder
	rc  *http.ResponseController
	n   int
	// cut > 0: abort the response instead of writing event number cut+1.
	cut int
}

func (c *call) startStream() *streamer {
	h := c.w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	h.Set("x-amzn-bedrock-content-type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	st := &streamer{c: c, enc: eventstream.NewEncoder(), rc: http.NewResponseController(c.w)}
	c.s.mu.Lock()
	st.cut, c.s.cutNext = c.s.cutNext, 0
	c.s.mu.Unlock()
	_ = st.rc.Flush()
	return st
}

// event writes one event-stream message and flushes it, pausing
// StreamDelay before every event after the first.
func (st *streamer) event(eventType string, payload any) bool {
	if st.n > 0 && st.c.s.cfg.StreamDelay > 0 {
		t := time.NewTimer(st.c.s.cfg.StreamDelay)
		select {
		case <-t.C:
		case <-st.c.r.Context().Done():
			t.Stop()
			return false
		}
	}
	if st.cut > 0 && st.n >= st.cut {
		// Abort the response: the client sees the stream end without
		// the remaining events (HTTP/1.1: connection closed; HTTP/2:
		// stream reset).
		panic(http.ErrAbortHandler)
	}
	st.n++
	b, err := json.Marshal(payload)
	if err != nil {
		return false
	}
	var msg eventstream.Message
	msg.Headers.Set(":message-type", eventstream.StringValue("event"))
	msg.Headers.Set(":event-type", eventstream.StringValue(eventType))
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	msg.Payload = b
	if err := st.enc.Encode(st.c.w, msg); err != nil {
		return false
	}
	return st.rc.Flush() == nil
}

func (c *call) converseStream() {
	u, e := c.converseInput()
	if e != nil {
		writeError(c.w, e)
		return
	}
	text := c.answer()
	st := c.startStream()
	if !st.event("messageStart", map[string]any{"role": "assistant"}) {
		return
	}
	for _, p := range pieces(text) {
		if !st.event("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"text": p}}) {
			return
		}
	}
	if !st.event("contentBlockStop", map[string]any{"contentBlockIndex": 0}) ||
		!st.event("messageStop", map[string]any{"stopReason": "end_turn"}) {
		return
	}
	st.event("metadata", map[string]any{
		"usage":   u.converseUsage(),
		"metrics": map[string]any{"latencyMs": c.latencyMS()},
	})
}

func (c *call) messagesResponse(in int) map[string]any {
	text := c.answer()
	resp := map[string]any{
		"id":            "msg_fake_" + strings.ReplaceAll(c.w.Header().Get("x-amzn-RequestId"), "-", "")[:20],
		"type":          "message",
		"role":          "assistant",
		"model":         c.model,
		"content":       []any{map[string]any{"type": "text", "text": text}},
		"stop_reason":   "end_turn",
		"stop_sequence": nil,
		"usage":         map[string]any{"input_tokens": in, "output_tokens": max(1, countTokens(text))},
	}
	return resp
}

func (c *call) invokeModel() {
	m, e := c.jsonBody()
	if e != nil {
		writeError(c.w, e)
		return
	}
	in := max(1, countTokens(m))
	resp := c.messagesResponse(in)
	resp["echo"] = m
	h := c.w.Header()
	h.Set("X-Amzn-Bedrock-Input-Token-Count", strconv.Itoa(in))
	h.Set("X-Amzn-Bedrock-Output-Token-Count", strconv.Itoa(resp["usage"].(map[string]any)["output_tokens"].(int)))
	h.Set("X-Amzn-Bedrock-Invocation-Latency", strconv.FormatInt(c.latencyMS(), 10))
	writeJSON(c.w, http.StatusOK, resp)
}

func (c *call) invokeModelStream() {
	m, e := c.jsonBody()
	if e != nil {
		writeError(c.w, e)
		return
	}
	in := max(1, countTokens(m))
	text := c.answer()
	out := max(1, countTokens(text))
	full := c.messagesResponse(in)
	full["content"] = []any{}
	full["stop_reason"] = nil
	events := []any{map[string]any{"type": "message_start", "message": full},
		map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}}
	for _, p := range pieces(text) {
		events = append(events, map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": p}})
	}
	events = append(events,
		map[string]any{"type": "content_block_stop", "index": 0},
		map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": out}},
		map[string]any{"type": "message_stop", "amazon-bedrock-invocationMetrics": map[string]any{
			"inputTokenCount": in, "outputTokenCount": out, "invocationLatency": c.latencyMS(), "firstByteLatency": 1}},
	)
	st := c.startStream()
	for _, ev := range events {
		b, _ := json.Marshal(ev)
		if !st.event("chunk", map[string]any{"bytes": base64.StdEncoding.EncodeToString(b)}) {
			return
		}
	}
}

func (c *call) countTokens() {
	m, e := c.jsonBody()
	if e != nil {
		writeError(c.w, e)
		return
	}
	input, ok := m["input"].(map[string]any)
	if !ok || len(input) != 1 {
		writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'input' failed to satisfy constraint: Member must not be null"))
		return
	}
	n := 0
	if inv, ok := input["invokeModel"].(map[string]any); ok {
		raw, _ := inv["body"].(string)
		dec, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "Malformed input request, please reformat your input and try again."))
			return
		}
		var v any
		if json.Unmarshal(dec, &v) != nil {
			writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "Malformed input request, please reformat your input and try again."))
			return
		}
		n = countTokens(v)
	} else {
		n = countTokens(input)
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"inputTokens": max(1, n)})
}

func (c *call) applyGuardrail(rawPath string) {
	m, e := c.jsonBody()
	if e != nil {
		writeError(c.w, e)
		return
	}
	src, _ := m["source"].(string)
	content, _ := m["content"].([]any)
	if (src != "INPUT" && src != "OUTPUT") || len(content) == 0 {
		writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "1 validation error detected: 'source' must be INPUT or OUTPUT and 'content' must not be empty"))
		return
	}
	units := max(1, countTokens(content)/250+1)
	writeJSON(c.w, http.StatusOK, map[string]any{
		"usage": map[string]any{"topicPolicyUnits": units, "contentPolicyUnits": units, "wordPolicyUnits": units,
			"sensitiveInformationPolicyUnits": units, "sensitiveInformationPolicyFreeUnits": 0, "contextualGroundingPolicyUnits": 0},
		"action":       "NONE",
		"actionReason": "No action. " + c.answer(),
		"outputs":      []any{},
		"assessments":  []any{map[string]any{}},
	})
}

func accountOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) > 4 && parts[4] != "" {
		return parts[4]
	}
	return "111122223333"
}

func (c *call) startAsync() {
	m, e := c.jsonBody()
	if e != nil {
		writeError(c.w, e)
		return
	}
	model, _ := m["modelId"].(string)
	out, ok := m["outputDataConfig"]
	if model == "" || !ok {
		writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "1 validation error detected: 'modelId' and 'outputDataConfig' are required"))
		return
	}
	if len(c.s.cfg.Models) > 0 && !slices.Contains(c.s.cfg.Models, model) {
		writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "The provided model identifier is invalid."))
		return
	}
	token, _ := m["clientRequestToken"].(string)
	outJSON, _ := json.Marshal(out)
	id := strings.ReplaceAll(credstore.RequestID(), "-", "")[:12]
	job := &asyncJob{
		ARN:     "arn:aws:bedrock:" + c.region + ":" + accountOf(c.principal) + ":async-invoke/" + id,
		ModelID: model, ClientToken: token, Status: "Completed", Submit: c.s.now().UTC(), Output: outJSON,
	}
	c.s.mu.Lock()
	c.s.jobs = append(c.s.jobs, job)
	c.s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, map[string]any{"invocationArn": job.ARN})
}

func (c *call) jobJSON(j *asyncJob) map[string]any {
	return map[string]any{
		"invocationArn":      j.ARN,
		"modelArn":           "arn:aws:bedrock:" + c.region + "::foundation-model/" + j.ModelID,
		"clientRequestToken": j.ClientToken,
		"status":             j.Status,
		"submitTime":         j.Submit.Format(time.RFC3339),
		"endTime":            j.Submit.Format(time.RFC3339),
		"lastModifiedTime":   j.Submit.Format(time.RFC3339),
		"outputDataConfig":   j.Output,
	}
}

func (c *call) listAsync() {
	c.s.mu.Lock()
	jobs := slices.Clone(c.s.jobs)
	c.s.mu.Unlock()
	sums := []any{}
	for _, j := range jobs {
		if strings.Contains(j.ARN, ":"+c.region+":") {
			sums = append(sums, c.jobJSON(j))
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"asyncInvokeSummaries": sums})
}

func (c *call) getAsync(rawPath string) {
	arn, err := url.PathUnescape(strings.TrimPrefix(rawPath, "/async-invoke/"))
	if err != nil {
		writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "The invocation ARN is malformed."))
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, j := range c.s.jobs {
		if j.ARN == arn {
			writeJSON(c.w, http.StatusOK, c.jobJSON(j))
			return
		}
	}
	writeError(c.w, errf(http.StatusNotFound, "ResourceNotFoundException", "The specified invocation ARN does not exist."))
}
