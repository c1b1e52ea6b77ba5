package extproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
)

const deniedModelPath = "/model/anthropic.claude-3-opus-20240229-v1%3A0/converse"

func denyOpus(c *bedrock.Config, _ *Options) {
	c.DenyModels = []string{"anthropic.claude-3-opus-20240229-v1:0"}
}

var accountDigits = regexp.MustCompile(`(^|[^0-9])[0-9]{12}([^0-9]|$)`)

// TestEnvoyScrubsAWSErrors: an AccessDeniedException from Bedrock names the
// signer (the tenant's assumed role or the platform's IAM user, with its
// account id). Through the real Envoy the caller still gets the status, the
// error type and a JSON body with a message, but no account id, ARN, role
// or session name, and a content-length that matches the body. Successful
// responses, streamed or not, pass through untouched.
func TestEnvoyScrubsAWSErrors(t *testing.T) {
	w := newAWSWorld(t, 2, denyOpus)
	listen := startEnvoyWith(t, w.srv, w.bedrock, true, false)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	secrets := []string{"arn:aws", "tenant-bedrock", "tenantgate-acct-01", "tenantgate-platform", "000000100001", "000000000000"}

	for _, tc := range []struct{ name, tenant string }{
		{"tenant role", "enterprise:acct-01"},
		{"platform user", "pro"},
	} {
		t.Run("denied "+tc.name, func(t *testing.T) {
			w.bedrock.ResetRecords()
			status, rb, hdr := sendThroughEnvoy(t, listen, tc.tenant, "deny-"+tc.name, "POST", deniedModelPath, body)
			if recs := w.bedrock.Records(); len(recs) != 1 || recs[0].ErrorType != "AccessDeniedException" {
				t.Fatalf("bedrock records %+v", recs)
			}
			if status != 403 || !strings.HasPrefix(hdr.Get("X-Amzn-Errortype"), "AccessDeniedException") {
				t.Fatalf("status %d error type %q body %s", status, hdr.Get("X-Amzn-Errortype"), rb)
			}
			for _, s := range secrets {
				if bytes.Contains(rb, []byte(s)) {
					t.Errorf("body reveals %q: %s", s, rb)
				}
			}
			if accountDigits.Match(rb) {
				t.Errorf("body has a 12-digit number: %s", rb)
			}
			var m map[string]string
			if err := json.Unmarshal(rb, &m); err != nil || len(m) != 1 {
				t.Fatalf("body %s is not AWS's JSON shape: %v", rb, err)
			}
			if !strings.Contains(m["message"], "is not authorized to perform: bedrock:InvokeModel") {
				t.Fatalf("message lost its meaning: %q", m["message"])
			}
			if cl := hdr.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(rb)) {
				t.Fatalf("content-length %s for %d bytes", cl, len(rb))
			}
		})
	}

	// 2xx bodies are not scrubbed: the fake's answer names the signer.
	for i, tc := range []struct{ name, path string }{
		{"converse", haikuPath},
		{"converse-stream", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"},
	} {
		t.Run("ok "+tc.name, func(t *testing.T) {
			status, rb, _ := sendThroughEnvoy(t, listen, "enterprise:acct-01", fmt.Sprintf("ok-%d", i), "POST", tc.path, body)
			if status != 200 || !bytes.Contains(rb, []byte("arn:aws:sts::000000100001:assumed-role/tenant-bedrock/tenantgate-acct-01")) {
				t.Fatalf("status %d body %q", status, rb)
			}
		})
	}
}

// TestEnvoyBodyPhaseRejectionWithResponseHeaders: a request refused in the
// body phase (here: a chunked body over max_body_bytes) still gets its
// JSON error from ext_proc although the headers reply asked Envoy for the
// response headers; nothing reaches the upstream.
func TestEnvoyBodyPhaseRejectionWithResponseHeaders(t *testing.T) {
	listen, fb := startEnvoy(t, true, false)
	big := bytes.Repeat([]byte("x"), int(testExtProcConfig().MaxBodyBytes)+1)
	req, err := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d%s", listen, haikuPath), io.NopCloser(bytes.NewReader(big)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked: the limit is found in the body phase
	req.Header.Set("X-Test-Tenant", "pro")
	req.Header.Set("X-Test-Id", "big-chunked")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !bytes.Contains(rb, []byte("body_too_large")) {
		t.Fatalf("status %d body %s", resp.StatusCode, rb)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if _, ok := fb.signers["big-chunked"]; ok {
		t.Fatal("request reached the upstream")
	}
}
