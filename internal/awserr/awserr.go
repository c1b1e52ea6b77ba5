// Package awserr removes AWS identities from AWS error responses before they
// reach tenantgate's callers. Bedrock's error messages name the principal
// that signed the request and the resources it touched ("User:
// arn:aws:sts::111122223333:assumed-role/TenantRole/session is not authorized
// to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:..."): the
// platform's or a tenant's account id, role and session names. Scrub replaces
// every ARN and every 12-digit account id with Placeholder and keeps the rest:
// the JSON shape, the field names and the text of the message.
package awserr

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// Placeholder replaces each ARN or account id.
const Placeholder = "[redacted]"

// arnRe matches an ARN in any AWS partition (aws, aws-cn, aws-us-gov, ...)
// up to the next white space or quote. Role, user and session names live
// inside ARNs, so they go with them.
var arnRe = regexp.MustCompile(`arn:aws[-a-z]*:[^\s"]*`)

// digitsRe matches a run of ASCII digits; runs of exactly 12 are account ids.
var digitsRe = regexp.MustCompile(`[0-9]+`)

// ScrubText returns s with every ARN and every run of exactly 12 digits
// replaced by Placeholder.
func ScrubText(s string) string {
	s = arnRe.ReplaceAllLiteralString(s, Placeholder)
	return digitsRe.ReplaceAllStringFunc(s, func(d string) string {
		if len(d) == 12 {
			return Placeholder
		}
		return d
	})
}

// Scrub returns body with AWS identities removed. A JSON document keeps its
// exact shape: only the contents of its strings (keys and values) change, and
// each changed string is re-encoded as valid JSON. Anything that is not valid
// JSON (a truncated or non-JSON body) is scrubbed as text. The result never
// contains an ARN or a run of exactly 12 digits.
func Scrub(body []byte) []byte {
	if !json.Valid(body) {
		return []byte(ScrubText(string(body)))
	}
	var out bytes.Buffer
	out.Grow(len(body))
	for i := 0; i < len(body); {
		c := body[i]
		if c != '"' {
			// Outside strings a valid document holds only punctuation,
			// white space, literals and numbers; a number may be a
			// 12-digit account id.
			j := i
			for j < len(body) && body[j] != '"' {
				j++
			}
			out.WriteString(scrubNumbers(string(body[i:j])))
			i = j
			continue
		}
		j := stringEnd(body, i)
		lit := body[i:j]
		var s string
		if err := json.Unmarshal(lit, &s); err != nil {
			// Unreachable for a valid document; scrub as text to be safe.
			out.WriteString(ScrubText(string(lit)))
		} else if scrubbed := ScrubText(s); scrubbed != s {
			out.Write(quote(scrubbed))
		} else {
			out.Write(lit)
		}
		i = j
	}
	return out.Bytes()
}

// numberRe matches a JSON number token (outside strings).
var numberRe = regexp.MustCompile(`-?[0-9][0-9.eE+-]*`)

// scrubNumbers replaces every JSON number outside strings that contains a
// 12-digit run (an account id such as 111122223333) with the string
// "[redacted]", which keeps the document valid.
func scrubNumbers(s string) string {
	return numberRe.ReplaceAllStringFunc(s, func(n string) string {
		if ScrubText(n) != n {
			return `"` + Placeholder + `"`
		}
		return n
	})
}

// stringEnd returns the index just past the JSON string literal starting at
// body[i] == '"' (or len(body) if it is unterminated).
func stringEnd(body []byte, i int) int {
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(body)
}

// quote encodes s as a JSON string without HTML escaping (invalid UTF-8
// becomes U+FFFD, as encoding/json does).
func quote(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
