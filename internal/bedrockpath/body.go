package bedrockpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadAsyncBody is returned for a StartAsyncInvoke body from which no
// single, unambiguous modelId can be read.
var ErrBadAsyncBody = errors.New("bedrockpath: StartAsyncInvoke body must be a JSON object with one string modelId")

// MaxModelIDLen bounds a model id read from a request body (AWS allows 2048).
const MaxModelIDLen = 2048

// Async reports whether op is one of the async-invoke operations.
func (op Operation) Async() bool {
	return op == StartAsyncInvoke || op == ListAsyncInvokes || op == GetAsyncInvoke
}

// AsyncInvokeModelID returns the top-level "modelId" of a StartAsyncInvoke
// JSON body (untrusted). It refuses anything another JSON reader could see
// differently: invalid JSON or UTF-8, a non-object, a missing, empty,
// non-string or over-long modelId, a modelId key given twice, or a key that
// differs from "modelId" only in case (Go's own decoder would match it).
func AsyncInvokeModelID(body []byte) (string, error) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return "", fmt.Errorf("%w: not valid JSON", ErrBadAsyncBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", fmt.Errorf("%w: not a JSON object", ErrBadAsyncBody)
	}
	var model *string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadAsyncBody, err)
		}
		key, ok := tok.(string)
		if !ok {
			return "", fmt.Errorf("%w: bad object key", ErrBadAsyncBody)
		}
		if !strings.EqualFold(key, "modelId") {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", fmt.Errorf("%w: %v", ErrBadAsyncBody, err)
			}
			continue
		}
		if key != "modelId" || model != nil {
			return "", fmt.Errorf("%w: ambiguous modelId key", ErrBadAsyncBody)
		}
		var v *string
		if err := dec.Decode(&v); err != nil || v == nil {
			return "", fmt.Errorf("%w: modelId is not a string", ErrBadAsyncBody)
		}
		model = v
	}
	if model == nil || *model == "" {
		return "", fmt.Errorf("%w: no modelId", ErrBadAsyncBody)
	}
	if len(*model) > MaxModelIDLen {
		return "", fmt.Errorf("%w: modelId too long", ErrBadAsyncBody)
	}
	for _, r := range *model {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in modelId", ErrBadAsyncBody)
		}
	}
	return *model, nil
}
