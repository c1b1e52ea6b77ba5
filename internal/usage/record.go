// Package usage meters Bedrock responses: it reads the token usage AWS
// reports in each response (JSON body, headers or event stream) as the
// response passes, builds one Record per request and hands records to a
// Recorder, which exports Prometheus metrics and writes them in batches,
// off the request path, to a Sink (PostgreSQL or an NDJSON file),
// optionally debiting credits by a per-model price table.
package usage

import (
	"time"
)

// Identity kinds (whose AWS credentials signed the request).
const (
	KindTenant   = "tenant"
	KindPlatform = "platform"
)

// Record is the usage of one request.
type Record struct {
	// RequestID is Envoy's x-request-id: the idempotency key.
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"time"`
	AccountID string    `json:"account_id"`
	Tier      string    `json:"tier,omitempty"`
	// UserID is the user id, or "service:<principal>" for a service.
	UserID        string `json:"user_id,omitempty"`
	PrincipalKind string `json:"principal_kind,omitempty"`
	APIKeyID      string `json:"api_key_id,omitempty"`
	// Model is the model id or ARN as the client called it; ResolvedModel
	// is what was sent to AWS (an inference profile after a rewrite).
	Model         string `json:"model"`
	ResolvedModel string `json:"resolved_model"`
	Operation     string `json:"operation"`
	Region        string `json:"region,omitempty"`
	IdentityKind  string `json:"identity_kind,omitempty"`
	Status        int    `json:"status"`
	// Complete is false for a response that ended before its end of
	// stream (a cut stream or a dropped connection): its tokens are those
	// seen so far.
	Complete  bool   `json:"complete"`
	ErrorType string `json:"error_type,omitempty"`
	Tokens
	// FinalUsage: the tokens are AWS's usage report for the request, not
	// a partial count.
	FinalUsage bool `json:"final_usage"`
	// LatencyMS is from the signed request leaving for AWS to the end of
	// the response; TTFBMS to its first body byte (its headers for a
	// response without a body).
	LatencyMS float64 `json:"latency_ms"`
	TTFBMS    float64 `json:"ttfb_ms"`
	// Cost is the credits debited (nil when credits are off or the model
	// has no price).
	Cost *float64 `json:"cost,omitempty"`
}
