package examples

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/server"
)

// TestComposeLinkIsMutualTLS: in docker-compose.yml, tenantgate's gRPC port
// is not published, and Envoy reaches it over mutual TLS with the files
// scripts/dev-certs.sh writes: a real handshake between tenantgate's
// server.grpc_tls (examples/tenantgate.yaml) and Envoy's tenantgate cluster
// settings succeeds, while the mesh worker's client certificate (another
// CA) is refused.
func TestComposeLinkIsMutualTLS(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("needs openssl for scripts/dev-certs.sh")
	}
	var c composeFile
	readYAML(t, "../docker-compose.yml", &c)
	tg, envoySvc := c.Services["tenantgate"], c.Services["envoy"]
	for _, p := range tg.Ports {
		if strings.HasSuffix(p, ":9191") || p == "9191" {
			t.Errorf("tenantgate publishes its gRPC port: %q", p)
		}
	}

	dir := t.TempDir()
	if out, err := exec.Command("../scripts/dev-certs.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("dev-certs.sh: %v\n%s", err, out)
	}
	// hostPath maps a container path of service s to dir through its
	// ${TENANTGATE_TLS_DIR:-./.tmp/tls} mount.
	hostPath := func(vols []string, p string) string {
		t.Helper()
		for _, v := range vols {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.Contains(v, "TENANTGATE_TLS_DIR") {
				continue
			}
			target := parts[len(parts)-2]
			if parts[len(parts)-1] != "ro" {
				target = parts[len(parts)-1]
			}
			if rest, ok := strings.CutPrefix(p, target+"/"); ok {
				return filepath.Join(dir, rest)
			}
		}
		t.Fatalf("%s is not under a mounted TLS directory (%v)", p, vols)
		return ""
	}

	cfg, err := config.Load("tenantgate.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Server.GRPCTLS
	if !g.Enabled() || len(g.AllowedClientSANs) == 0 {
		t.Fatalf("examples/tenantgate.yaml: grpc_tls = %+v, want mutual TLS with pinned SANs", g)
	}
	srvTLS, err := server.MutualTLS{
		CertFile:          hostPath(tg.Volumes, g.CertFile),
		KeyFile:           hostPath(tg.Volumes, g.KeyFile),
		ClientCAFile:      hostPath(tg.Volumes, g.ClientCAFile),
		AllowedClientSANs: g.AllowedClientSANs,
		MinVersion:        g.TLSMinVersion(),
	}.Config()
	if err != nil {
		t.Fatal(err)
	}

	var e map[string]any
	readYAML(t, "../envoy/envoy.yaml", &e)
	var tctx map[string]any
	for _, cl := range e["static_resources"].(map[string]any)["clusters"].([]any) {
		if cm := cl.(map[string]any); cm["name"] == "tenantgate" {
			tctx = cm["transport_socket"].(map[string]any)["typed_config"].(map[string]any)
		}
	}
	if tctx == nil {
		t.Fatal("envoy.yaml: tenantgate cluster has no transport_socket")
	}
	common := tctx["common_tls_context"].(map[string]any)
	certs := common["tls_certificates"].([]any)[0].(map[string]any)
	file := func(m any) string { return hostPath(envoySvc.Volumes, m.(map[string]any)["filename"].(string)) }
	envoyCert, envoyKey := file(certs["certificate_chain"]), file(certs["private_key"])
	envoyCA := file(common["validation_context"].(map[string]any)["trusted_ca"])
	sni := tctx["sni"].(string)

	handshake := func(certFile, keyFile string) error {
		caPEM, err := os.ReadFile(envoyCA)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		errc := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			errc <- tls.Server(c, srvTLS).Handshake()
		}()
		raw, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		cli := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: sni, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
		cerr := cli.Handshake()
		serr := <-errc
		if cerr != nil {
			return cerr
		}
		return serr
	}
	if err := handshake(envoyCert, envoyKey); err != nil {
		t.Errorf("Envoy's client certificate: handshake failed: %v", err)
	}
	if err := handshake(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")); err == nil {
		t.Error("the mesh worker's client certificate was accepted by tenantgate")
	}
}
