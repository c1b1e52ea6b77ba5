package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/store/filestore"
)

const assumeRoleXML = `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleResult><Credentials><AccessKeyId>ASIATENANT</AccessKeyId><SecretAccessKey>tenant-secret</SecretAccessKey>
<SessionToken>tenant-session</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/tenantgate-x</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></AssumeRoleResponse>`

func TestWarmOnStartAssumesEveryRoute(t *testing.T) {
	var (
		mu    sync.Mutex
		forms []url.Values
		auths []string
	)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f, _ := url.ParseQuery(string(b))
		mu.Lock()
		forms = append(forms, f)
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, assumeRoleXML)
	}))
	defer sts.Close()

	cfg := testConfig(t, "extproc:\n  assume_role:\n    warm_on_start: true\n")
	awsCfg := staticAWS()
	awsCfg.BaseEndpoint = aws.String(sts.URL)
	r := startAppWith(t, cfg, Options{AWSConfig: awsCfg})

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(forms)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no AssumeRole call while warming")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	f, auth := forms[0], auths[0]
	mu.Unlock()
	if f.Get("Action") != "AssumeRole" || f.Get("RoleArn") != filestore.DemoAcmeRoleARN || f.Get("ExternalId") != filestore.DemoAcmeExternalID {
		t.Errorf("AssumeRole form = %v", f)
	}
	// Warmed sessions carry the tier the account's requests will use, so
	// that the first request does not need a second session.
	if f.Get("Tags.member.2.Key") != "tier" || f.Get("Tags.member.2.Value") != "tier_200_1000" || f.Get("SourceIdentity") != f.Get("Tags.member.1.Value") {
		t.Errorf("warmed session tags = %v", f)
	}
	// Signed with the platform credentials for the route's region.
	if !strings.Contains(auth, "Credential=AKIDPLATFORM/") || !strings.Contains(auth, "/"+filestore.DemoAcmeRegion+"/sts/aws4_request") {
		t.Errorf("STS request authorization = %q", auth)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(metrics(t, r), `tenantgate_sts_assume_role_calls_total{result="ok"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("STS call not counted:\n%s", metrics(t, r))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(r.logs.String(), "tenant-secret") {
		t.Error("tenant credentials logged")
	}
}

func metrics(t *testing.T, r *running) string {
	t.Helper()
	_, body := httpGet(t, "http://"+r.app.HTTPAddr().String()+"/metrics")
	return body
}

func TestShutdownFlushesAPIKeyUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	// A long touch interval: only the flush on shutdown can write.
	cfg := testConfig(t, "  api_keys:\n    touch_interval: 1h\n")
	r := startAppWith(t, cfg, Options{AWSConfig: staticAWS(), Registry: reg})
	resp, err := authv3.NewAuthorizationClient(r.conn).Check(context.Background(),
		checkRequest("/model/anthropic.claude-3-haiku-20240307-v1:0/invoke", map[string]string{"x-api-key": filestore.DemoAPIKeyPublic + ":" + filestore.DemoAPIKeySecret}))
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	if got := flushes(t, reg); got != 0 {
		t.Fatalf("flushed before shutdown: %v", got)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if got := flushes(t, reg); got != 1 {
		t.Fatalf("flushes after shutdown = %v, want 1", got)
	}
}

func flushes(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tenantgate_apikey_touch_flushes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "ok" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// A JWKS issuer whose keys cannot be fetched keeps the process not ready,
// and /readyz names the check without echoing URLs or secrets.
func TestNotReadyWithoutJWKS(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	jwksURL := down.URL + "/auth/v1/.well-known/jwks.json?apikey=anon-secret"
	down.Close()
	cfg := testConfig(t, "    - issuer: https://other.supabase.co/auth/v1\n      jwks_url: "+jwksURL+"\n")
	r := startApp(t, cfg)
	code, body := httpGet(t, "http://"+r.app.HTTPAddr().String()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"jwt_verifier"`) || strings.Contains(body, `"store"`) {
		t.Fatalf("readyz = %d %s", code, body)
	}
	if strings.Contains(body, "anon-secret") || strings.Contains(body, down.URL) {
		t.Errorf("readyz leaks details: %s", body)
	}
}
