package stack

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startLinkStack starts the stack with the demo tenants in a tenants file
// and the given Envoy -> tenantgate link.
func startLinkStack(t *testing.T, link Link) *Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("real Envoy: skipped in -short mode")
	}
	bin := RequireEnvoy(t)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "internal", "store", "filestore", "default-tenants.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := Start(ctx, Options{EnvoyBin: bin, TenantsFile: file, TenantgateLink: link})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stack logs:\n%s", st.LogTails(6000))
		}
		if err := st.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
	})
	return st
}

// converseViaEnvoy sends an Acme API-key Converse request through Envoy's
// public listener and checks that the fake Bedrock received it signed with
// Acme's assumed role.
func converseViaEnvoy(t *testing.T, st *Stack) {
	t.Helper()
	client, err := st.HTTPClient("", "")
	if err != nil {
		t.Fatal(err)
	}
	n := len(st.Records())
	path := "/model/" + strings.ReplaceAll(DemoModel, ":", "%3A") + "/converse"
	req, err := http.NewRequest(http.MethodPost, st.EnvoyURL+path, strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-api-key", AcmeAPIKeyPublic+":"+AcmeAPIKeySecret)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	recs := st.Records()[n:]
	if len(recs) != 1 {
		t.Fatalf("fake Bedrock saw %d requests, want 1", len(recs))
	}
	r := recs[0]
	if r.Status != http.StatusOK || r.Region != AcmeRegion || !strings.Contains(r.PrincipalARN, "assumed-role/AcmeBedrockAccess/") || !r.SessionTokenPresent {
		t.Fatalf("upstream record %+v, want a valid signature of Acme's role in %s", r, AcmeRegion)
	}
}

// tenantgateHealth asks tenantgate's gRPC port directly (as anything on the
// network could) for its health, presenting certFile when not empty.
func tenantgateHealth(t *testing.T, st *Stack, certFile, keyFile string) error {
	t.Helper()
	creds, err := st.TenantgateCreds(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(st.TenantgateGRPC, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func envoyStat(t *testing.T, st *Stack, name string) string {
	t.Helper()
	body, err := HTTPGet(context.Background(), st.EnvoyAdminURL+"/stats?filter=^"+name+"$")
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := strings.Cut(strings.TrimSpace(body), ": ")
	return v
}

// TestEnvoyToTenantgateMutualTLS: the shipped envoy/envoy.yaml reaches
// tenantgate over mutual TLS (its tenantgate cluster presents Envoy's client
// certificate) and a request is signed end to end, while a direct client
// without that certificate, or with a certificate of another CA or SAN,
// gets nothing from tenantgate.
func TestEnvoyToTenantgateMutualTLS(t *testing.T) {
	st := startLinkStack(t, LinkMTLS)
	converseViaEnvoy(t, st)
	if v := envoyStat(t, st, "cluster.tenantgate.ssl.handshake"); v == "" || v == "0" {
		t.Errorf("cluster.tenantgate.ssl.handshake = %q: Envoy did not reach tenantgate over TLS", v)
	}
	if err := tenantgateHealth(t, st, st.Certs.EnvoyClientCert, st.Certs.EnvoyClientKey); err != nil {
		t.Errorf("with Envoy's certificate: %v", err)
	}
	for name, pair := range map[string][2]string{
		"no certificate":         {"", ""},
		"mesh worker (other CA)": {st.Certs.WorkerCert, st.Certs.WorkerKey},
		"link CA, wrong SAN":     {st.Certs.IntruderCert, st.Certs.IntruderKey},
	} {
		if err := tenantgateHealth(t, st, pair[0], pair[1]); err == nil {
			t.Errorf("%s: tenantgate answered", name)
		}
	}
}

// TestEnvoyToTenantgateUnixSocket: Envoy reaches tenantgate over a Unix
// socket (a pipe endpoint) of mode 0600 and a request is signed end to end.
func TestEnvoyToTenantgateUnixSocket(t *testing.T) {
	st := startLinkStack(t, LinkUnix)
	path, ok := strings.CutPrefix(st.TenantgateGRPC, "unix:")
	if !ok {
		t.Fatalf("TenantgateGRPC = %q, want unix:", st.TenantgateGRPC)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v %v", path, fi, err)
	}
	converseViaEnvoy(t, st)
}
