package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/stack"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
)

// askForSignature is what an attacker who reaches the gRPC port would send:
// a ProcessingRequest naming a tenant, asking ext_proc to sign for it. It
// returns the first ProcessingResponse, or the error that stopped it.
func askForSignature(t *testing.T, conn *grpc.ClientConn) (*extprocv3.ProcessingResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		return nil, err
	}
	id := identity.Identity{AccountID: filestore.DemoAliceAccountID, UserID: filestore.DemoAliceUserID, Tier: "free", Role: "owner", Principal: identity.PrincipalUser, Credential: "jwt"}
	err = stream.Send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers:     headerMap(map[string]string{":method": "POST", ":path": "/model/amazon.nova-lite-v1%3A0/converse", ":authority": "bedrock.gateway.example"}),
			EndOfStream: true,
		}},
		MetadataContext: metadataFor(id),
	})
	if err != nil {
		return nil, err
	}
	return stream.Recv()
}

func signature(resp *extprocv3.ProcessingResponse) string {
	for _, h := range resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "authorization") {
			return string(h.GetHeader().GetRawValue())
		}
	}
	return ""
}

func dialTLS(t *testing.T, addr, caFile, certFile, keyFile string) *grpc.ClientConn {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: stack.TenantgateServerName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestGRPCRequiresClientCertificate: with server.grpc_tls, only a client
// presenting a certificate of client_ca_file with a pinned SAN (Envoy) gets
// an answer; every other client fails the handshake and receives no
// ProcessingResponse, so it cannot obtain a tenant's signature.
func TestGRPCRequiresClientCertificate(t *testing.T) {
	certs, err := stack.WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, minVersion := range []string{"1.2", "1.3"} {
		t.Run("tls"+minVersion, func(t *testing.T) {
			cfg := testConfig(t, "")
			cfg.Server.GRPCTLS.CertFile = certs.TenantgateCert
			cfg.Server.GRPCTLS.KeyFile = certs.TenantgateKey
			cfg.Server.GRPCTLS.ClientCAFile = certs.LinkCA
			cfg.Server.GRPCTLS.AllowedClientSANs = []string{stack.EnvoyLinkSAN}
			cfg.Server.GRPCTLS.MinVersion = minVersion
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			r := startApp(t, cfg)
			addr := r.app.GRPCAddr().String()

			tests := []struct {
				name     string
				conn     *grpc.ClientConn
				wantSign bool
			}{
				{"plaintext", r.conn, false},
				{"TLS without a client certificate", dialTLS(t, addr, certs.LinkCA, "", ""), false},
				{"certificate of another CA (mesh worker)", dialTLS(t, addr, certs.LinkCA, certs.WorkerCert, certs.WorkerKey), false},
				{"certificate of an untrusted CA", dialTLS(t, addr, certs.LinkCA, certs.UntrustedCert, certs.UntrustedKey), false},
				{"right CA, wrong SAN", dialTLS(t, addr, certs.LinkCA, certs.IntruderCert, certs.IntruderKey), false},
				{"server certificate used as a client certificate", dialTLS(t, addr, certs.LinkCA, certs.TenantgateCert, certs.TenantgateKey), false},
				{"Envoy's client certificate", dialTLS(t, addr, certs.LinkCA, certs.EnvoyClientCert, certs.EnvoyClientKey), true},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, err := askForSignature(t, tt.conn)
					if !tt.wantSign {
						if err == nil || resp != nil {
							t.Fatalf("got an answer (%v, err %v); want the handshake to fail", resp, err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if sig := signature(resp); !strings.HasPrefix(sig, "AWS4-HMAC-SHA256 Credential=AKIDPLATFORM/") {
						t.Fatalf("authorization = %q, want a SigV4 signature", sig)
					}
				})
			}
		})
	}
}

// TestGRPCUnixSocket: grpc_listen unix:/path serves on a socket of mode
// grpc_socket_mode, replaces a stale socket file and removes it on stop.
func TestGRPCUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tenantgate.sock")
	// A socket left by a crashed run: nobody listens on it any more.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	for _, mode := range []struct {
		conf string
		want os.FileMode
	}{{"", 0o600}, {"0660", 0o660}} {
		t.Run("mode"+mode.want.String(), func(t *testing.T) {
			cfg := testConfig(t, "")
			cfg.Server.GRPCListen = "unix:" + path
			if mode.conf != "" {
				cfg.Server.GRPCSocketMode = mode.conf
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			r := startApp(t, cfg)
			if got := r.app.GRPCAddr().String(); got != path {
				t.Errorf("GRPCAddr = %q, want %q", got, path)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != mode.want {
				t.Errorf("socket mode = %v, want socket %v", st.Mode(), mode.want)
			}
			conn, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			resp, err := askForSignature(t, conn)
			if err != nil {
				t.Fatal(err)
			}
			if sig := signature(resp); !strings.HasPrefix(sig, "AWS4-HMAC-SHA256 ") {
				t.Fatalf("authorization = %q", sig)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("socket still exists after stop: %v", err)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) > 0 {
				t.Errorf("temporary files left: %v", m)
			}
		})
	}
}
