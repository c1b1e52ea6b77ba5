package extproc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tenantgate/tenantgate/internal/config"
)

// pathRecorder is an upstream that verifies SigV4 over the path it received
// and records that path and the signer per x-test-id.
type pathRecorder struct {
	mu    sync.Mutex
	paths map[string]string
	keys  map[string]string
}

func (p *pathRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	hs := map[string][]string{":authority": {r.Host}}
	for k, v := range r.Header {
		hs[strings.ToLower(k)] = v
	}
	key, err := verifySigV4(hs, r.Method, r.RequestURI, body, "bedrock")
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"message":%q}`, err.Error())
		return
	}
	p.mu.Lock()
	p.paths[r.Header.Get("X-Test-Id")], p.keys[r.Header.Get("X-Test-Id")] = r.RequestURI, key
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"output":{}}`)
}

// TestGeographyThroughRealEnvoy: in reject mode a foreign geography prefix
// is refused before anything leaves Envoy; in rewrite mode Envoy forwards
// the path ext_proc rewrote, and the signature covers that path.
func TestGeographyThroughRealEnvoy(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	const (
		usHaiku = "/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
		euHaiku = "/model/eu.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	)
	for _, mode := range []string{config.GeographyReject, config.GeographyRewrite} {
		t.Run(mode, func(t *testing.T) {
			cfg := testExtProcConfig()
			cfg.Geography = mode
			srv, err := New(Options{
				Config:   cfg,
				Platform: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil }),
			}, defaultRoutes(), &fakeCreds{})
			if err != nil {
				t.Fatal(err)
			}
			up := &pathRecorder{paths: map[string]string{}, keys: map[string]string{}}
			listen := startEnvoyWith(t, srv, up, true, false)
			cases := []struct {
				name, tenant, path string
				wantStatus         int
				wantCode, wantPath string
			}{
				// acct-ent is routed to eu-west-1, the platform signs in us-east-1.
				{"tenant own geography", "ent", euHaiku, 200, "", euHaiku},
				{"tenant global", "ent", "/model/global.anthropic.claude-sonnet-4-20250514-v1%3A0/converse", 200, "", "/model/global.anthropic.claude-sonnet-4-20250514-v1%3A0/converse"},
				{"tenant foreign geography", "ent", usHaiku, map[string]int{config.GeographyReject: 400, config.GeographyRewrite: 200}[mode],
					map[string]string{config.GeographyReject: "geography_mismatch"}[mode], euHaiku},
				{"platform foreign geography", "pro", euHaiku, map[string]int{config.GeographyReject: 400, config.GeographyRewrite: 200}[mode],
					map[string]string{config.GeographyReject: "geography_mismatch"}[mode], usHaiku},
				{"tenant arn of another region", "ent", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A111111111111%3Aapplication-inference-profile%2Fabc/converse", 400, "model_arn_mismatch", ""},
			}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					tid := fmt.Sprintf("geo-%s-%d", mode, i)
					status, rb, _ := sendThroughEnvoy(t, listen, tc.tenant, tid, "POST", tc.path, body)
					if status != tc.wantStatus {
						t.Fatalf("status %d (%s), want %d", status, rb, tc.wantStatus)
					}
					up.mu.Lock()
					gotPath, signed := up.paths[tid]
					up.mu.Unlock()
					if tc.wantCode != "" {
						if !strings.Contains(string(rb), `"`+tc.wantCode+`"`) {
							t.Fatalf("body %s lacks %s", rb, tc.wantCode)
						}
						if signed {
							t.Fatal("a refused request reached the upstream")
						}
						return
					}
					if gotPath != tc.wantPath {
						t.Fatalf("upstream path %q, want %q", gotPath, tc.wantPath)
					}
				})
			}
		})
	}
}
