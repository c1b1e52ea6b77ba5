package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

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
