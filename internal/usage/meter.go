package usage

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
)

// Tokens is the usage one response reported.
type Tokens struct {
	Input      int64 `json:"input_tokens"`
	Output     int64 `json:"output_tokens"`
	CacheRead  int64 `json:"cache_read_tokens"`
	CacheWrite int64 `json:"cache_write_tokens"`
}

// MaxJSONBody bounds the JSON response body a Meter keeps to find its
// usage (Converse, CountTokens); a larger body is recorded without tokens.
const MaxJSONBody = 8 << 20

// Meter reads the usage Bedrock reports in one response, whatever its
// operation, from the headers and body as they stream past. It never
// changes or holds back the response: it sees copies.
type Meter struct {
	op     bedrockpath.Operation
	status int
	tokens Tokens
	// found: the authoritative usage (not a partial count) was seen.
	found bool
	// errType is an AWS error type (x-amzn-errortype or a stream's
	// exception message).
	errType string

	json     []byte
	overflow bool
	dec      Decoder
	broken   bool
}

// NewMeter returns a Meter for a response to op.
func NewMeter(op bedrockpath.Operation) *Meter { return &Meter{op: op} }

// Headers takes the response status and headers (get returns a lower-case
// header's first value).
func (m *Meter) Headers(status int, get func(string) string) {
	m.status = status
	if t := get("x-amzn-errortype"); t != "" {
		m.errType, _, _ = strings.Cut(t, ":")
	}
	if m.op == bedrockpath.InvokeModel && status < 300 {
		in, err1 := strconv.ParseInt(get("x-amzn-bedrock-input-token-count"), 10, 64)
		out, err2 := strconv.ParseInt(get("x-amzn-bedrock-output-token-count"), 10, 64)
		if err1 == nil && err2 == nil && in >= 0 && out >= 0 {
			m.tokens.Input, m.tokens.Output, m.found = in, out, true
		}
		cr, err := strconv.ParseInt(get("x-amzn-bedrock-cache-read-input-token-count"), 10, 64)
		if err == nil && cr >= 0 {
			m.tokens.CacheRead = cr
		}
		cw, err := strconv.ParseInt(get("x-amzn-bedrock-cache-write-input-token-count"), 10, 64)
		if err == nil && cw >= 0 {
			m.tokens.CacheWrite = cw
		}
	}
}

// Body takes the next piece of the response body.
func (m *Meter) Body(p []byte) {
	if m.status >= 300 || len(p) == 0 {
		return
	}
	switch m.op {
	case bedrockpath.Converse, bedrockpath.CountTokens:
		if m.overflow {
			return
		}
		if len(m.json)+len(p) > MaxJSONBody {
			m.overflow, m.json = true, nil
			return
		}
		m.json = append(m.json, p...)
	case bedrockpath.ConverseStream, bedrockpath.InvokeModelWithResponseStream:
		if m.broken {
			return
		}
		if err := m.dec.Feed(p, m.event); err != nil {
			m.broken = true
		}
	}
}

// Done is called at the end of the body; complete reports whether the
// response ended normally.
func (m *Meter) Done() {
	if m.status >= 300 || m.overflow || len(m.json) == 0 {
		return
	}
	var v struct {
		Usage *struct {
			In         int64 `json:"inputTokens"`
			Out        int64 `json:"outputTokens"`
			CacheRead  int64 `json:"cacheReadInputTokens"`
			CacheWrite int64 `json:"cacheWriteInputTokens"`
		} `json:"usage"`
		InputTokens *int64 `json:"inputTokens"`
	}
	if json.Unmarshal(m.json, &v) != nil {
		return
	}
	switch {
	case m.op == bedrockpath.Converse && v.Usage != nil:
		m.tokens = Tokens{Input: v.Usage.In, Output: v.Usage.Out, CacheRead: v.Usage.CacheRead, CacheWrite: v.Usage.CacheWrite}
		m.found = true
	case m.op == bedrockpath.CountTokens && v.InputTokens != nil:
		// CountTokens is free: it reports what a request would use.
		m.tokens = Tokens{Input: *v.InputTokens}
		m.found = true
	}
	m.json = nil
}

func (m *Meter) event(msg Message) {
	switch msg.Headers[":message-type"] {
	case "exception", "error":
		if t := msg.Headers[":exception-type"]; t != "" {
			m.errType = t
		} else if t := msg.Headers[":error-code"]; t != "" {
			m.errType = t
		}
		return
	case "event":
	default:
		return
	}
	switch ev := msg.Headers[":event-type"]; {
	case m.op == bedrockpath.ConverseStream && ev == "metadata":
		var v struct {
			Usage *struct {
				In         int64 `json:"inputTokens"`
				Out        int64 `json:"outputTokens"`
				CacheRead  int64 `json:"cacheReadInputTokens"`
				CacheWrite int64 `json:"cacheWriteInputTokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(msg.Payload, &v) == nil && v.Usage != nil {
			m.tokens = Tokens{Input: v.Usage.In, Output: v.Usage.Out, CacheRead: v.Usage.CacheRead, CacheWrite: v.Usage.CacheWrite}
			m.found = true
		}
	case m.op == bedrockpath.InvokeModelWithResponseStream && ev == "chunk":
		var c struct {
			Bytes string `json:"bytes"`
		}
		if json.Unmarshal(msg.Payload, &c) != nil {
			return
		}
		raw, err := base64.StdEncoding.DecodeString(c.Bytes)
		if err != nil {
			return
		}
		m.chunk(raw)
	}
}

// chunk reads one InvokeModelWithResponseStream chunk: the last one carries
// amazon-bedrock-invocationMetrics; before it, a model's own usage fields
// (Anthropic's message_start input_tokens and message_delta output_tokens)
// are kept as the tokens seen so far, for a stream cut before the end.
func (m *Meter) chunk(raw []byte) {
	var v struct {
		Metrics *struct {
			In         int64 `json:"inputTokenCount"`
			Out        int64 `json:"outputTokenCount"`
			CacheRead  int64 `json:"cacheReadInputTokenCount"`
			CacheWrite int64 `json:"cacheWriteInputTokenCount"`
		} `json:"amazon-bedrock-invocationMetrics"`
		Message *struct {
			Usage *struct {
				In int64 `json:"input_tokens"`
			} `json:"usage"`
		} `json:"message"`
		Usage *struct {
			Out int64 `json:"output_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return
	}
	if v.Metrics != nil {
		m.tokens = Tokens{Input: v.Metrics.In, Output: v.Metrics.Out, CacheRead: v.Metrics.CacheRead, CacheWrite: v.Metrics.CacheWrite}
		m.found = true
		return
	}
	if m.found {
		return
	}
	if v.Message != nil && v.Message.Usage != nil {
		m.tokens.Input = v.Message.Usage.In
	}
	if v.Usage != nil {
		m.tokens.Output = v.Usage.Out
	}
}

// Result returns the tokens seen, whether they are the response's final
// usage report, and the AWS error type if any.
func (m *Meter) Result() (t Tokens, final bool, errType string) {
	return m.tokens, m.found, m.errType
}
