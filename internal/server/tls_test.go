package server

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/stack"
)

func TestSANAllowed(t *testing.T) {
	u := func(s string) *url.URL {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	envoy := &x509.Certificate{URIs: []*url.URL{u("spiffe://tenantgate.local/envoy")}, DNSNames: []string{"envoy.internal"}}
	tests := []struct {
		name    string
		allowed []string
		want    bool
	}{
		{"uri exact", []string{"spiffe://tenantgate.local/envoy"}, true},
		{"uri prefix is not enough", []string{"spiffe://tenantgate.local/env"}, false},
		{"uri with suffix", []string{"spiffe://tenantgate.local/envoy/x"}, false},
		{"dns exact", []string{"envoy.internal"}, true},
		{"dns case-insensitive", []string{"Envoy.Internal"}, true},
		{"dns entry does not match a uri", []string{"tenantgate.local"}, false},
		{"uri entry does not match a dns name", []string{"https://envoy.internal"}, false},
		{"one of several", []string{"spiffe://other", "envoy.internal"}, true},
		{"none", []string{"spiffe://other", "other.internal"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanAllowed(envoy, tt.allowed); got != tt.want {
				t.Errorf("sanAllowed(%v) = %v, want %v", tt.allowed, got, tt.want)
			}
		})
	}
}

// TestMutualTLSConfigFailsClosed: unreadable or empty files stop the start
// instead of serving without client verification.
func TestMutualTLSConfigFailsClosed(t *testing.T) {
	dir := t.TempDir()
	certs, err := stack.WriteCerts(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not-pem.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := MutualTLS{CertFile: certs.TenantgateCert, KeyFile: certs.TenantgateKey, ClientCAFile: certs.LinkCA}
	tests := []struct {
		name    string
		edit    func(m *MutualTLS)
		wantErr string
	}{
		{"valid", func(*MutualTLS) {}, ""},
		{"missing certificate", func(m *MutualTLS) { m.CertFile = filepath.Join(dir, "nope.crt") }, "grpc tls: load certificate"},
		{"key of another certificate", func(m *MutualTLS) { m.KeyFile = certs.EnvoyClientKey }, "grpc tls: load certificate"},
		{"missing client CA", func(m *MutualTLS) { m.ClientCAFile = filepath.Join(dir, "nope-ca.crt") }, "grpc tls: read client CA"},
		{"client CA without PEM", func(m *MutualTLS) { m.ClientCAFile = notPEM }, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			tt.edit(&m)
			cfg, err := m.Config()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.MinVersion != tls.VersionTLS12 || cfg.ClientCAs == nil {
					t.Errorf("config does not require verified client certificates: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
