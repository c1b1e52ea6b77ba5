// Package bedrockpath owns the parsing of Bedrock request paths: which
// operation a request is (runtime operations, and the read-only control-plane
// calls clients make) and, for model operations, which model it names.
// Paths come from clients and are untrusted.
package bedrockpath

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Operation is a Bedrock runtime API operation.
type Operation string

// Supported operations.
const (
	Converse                           Operation = "Converse"
	ConverseStream                     Operation = "ConverseStream"
	InvokeModel                        Operation = "InvokeModel"
	InvokeModelWithResponseStream      Operation = "InvokeModelWithResponseStream"
	InvokeModelWithBidirectionalStream Operation = "InvokeModelWithBidirectionalStream"
	CountTokens                        Operation = "CountTokens"
	ApplyGuardrail                     Operation = "ApplyGuardrail"
	StartAsyncInvoke                   Operation = "StartAsyncInvoke"
	ListAsyncInvokes                   Operation = "ListAsyncInvokes"
	GetAsyncInvoke                     Operation = "GetAsyncInvoke"

	// Read-only control-plane operations (host bedrock.<region>…).
	GetInferenceProfile   Operation = "GetInferenceProfile"
	ListInferenceProfiles Operation = "ListInferenceProfiles"
	GetFoundationModel    Operation = "GetFoundationModel"
	ListFoundationModels  Operation = "ListFoundationModels"
)

// ControlPlane reports whether o is a Bedrock control-plane operation
// (served by bedrock.<region>.amazonaws.com, not bedrock-runtime).
func (o Operation) ControlPlane() bool {
	switch o {
	case GetInferenceProfile, ListInferenceProfiles, GetFoundationModel, ListFoundationModels:
		return true
	}
	return false
}

// ErrUnsupported is returned for any method and path that is not a supported
// Bedrock runtime operation.
var ErrUnsupported = errors.New("bedrockpath: unsupported operation")

// MaxPathLen bounds the accepted path length.
const MaxPathLen = 8192

// Request is a parsed Bedrock runtime request line.
type Request struct {
	Op Operation
	// ModelID is the decoded model id or ARN for model operations (and the
	// inference profile or foundation model of the control-plane Get
	// operations), else "".
	ModelID string
	// Streaming reports an event-stream response.
	Streaming bool
	// RawPath is the path as received (without the query string).
	RawPath string
	// Query is the raw query string, without '?'.
	Query string
}

var modelOps = map[string]Operation{
	"converse":                         Converse,
	"converse-stream":                  ConverseStream,
	"invoke":                           InvokeModel,
	"invoke-with-response-stream":      InvokeModelWithResponseStream,
	"invoke-with-bidirectional-stream": InvokeModelWithBidirectionalStream,
	"count-tokens":                     CountTokens,
}

// controlOps maps a control-plane collection to its List and Get operations.
var controlOps = map[string][2]Operation{
	"inference-profiles": {ListInferenceProfiles, GetInferenceProfile},
	"foundation-models":  {ListFoundationModels, GetFoundationModel},
}

// Parse classifies method and path (Envoy's :method and :path; the path may
// carry a query string). Segments are split before percent-decoding, so an
// encoded '/' inside a model ARN stays inside the model id.
func Parse(method, path string) (Request, error) {
	if len(path) > MaxPathLen {
		return Request{}, fmt.Errorf("%w: path too long", ErrUnsupported)
	}
	raw, query, _ := strings.Cut(path, "?")
	if !strings.HasPrefix(raw, "/") {
		return Request{}, fmt.Errorf("%w: path must be absolute", ErrUnsupported)
	}
	segs := strings.Split(raw[1:], "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return Request{}, fmt.Errorf("%w: malformed path", ErrUnsupported)
		}
	}
	req := Request{RawPath: raw, Query: query}
	switch {
	case len(segs) == 3 && segs[0] == "model" && method == "POST":
		op, ok := modelOps[segs[2]]
		if !ok {
			return Request{}, fmt.Errorf("%w: unknown model action", ErrUnsupported)
		}
		id, err := decodeSegment(segs[1])
		if err != nil {
			return Request{}, err
		}
		req.Op, req.ModelID = op, id
		req.Streaming = op == ConverseStream || op == InvokeModelWithResponseStream || op == InvokeModelWithBidirectionalStream
	case len(segs) == 5 && segs[0] == "guardrail" && segs[2] == "version" && segs[4] == "apply" && method == "POST":
		for _, s := range []string{segs[1], segs[3]} {
			if _, err := decodeSegment(s); err != nil {
				return Request{}, err
			}
		}
		req.Op = ApplyGuardrail
	case len(segs) == 1 && segs[0] == "async-invoke" && method == "POST":
		req.Op = StartAsyncInvoke
	case len(segs) == 1 && segs[0] == "async-invoke" && method == "GET":
		req.Op = ListAsyncInvokes
	case len(segs) == 2 && segs[0] == "async-invoke" && method == "GET":
		if _, err := decodeSegment(segs[1]); err != nil {
			return Request{}, err
		}
		req.Op = GetAsyncInvoke
	case len(segs) <= 2 && method == "GET" && (segs[0] == "inference-profiles" || segs[0] == "foundation-models"):
		req.Op = controlOps[segs[0]][len(segs)-1]
		if len(segs) == 2 {
			id, err := decodeSegment(segs[1])
			if err != nil {
				return Request{}, err
			}
			req.ModelID = id
		}
	default:
		return Request{}, ErrUnsupported
	}
	return req, nil
}

func decodeSegment(s string) (string, error) {
	v, err := url.PathUnescape(s)
	if err != nil || v == "" {
		return "", fmt.Errorf("%w: bad path encoding", ErrUnsupported)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in path", ErrUnsupported)
		}
	}
	return v, nil
}
