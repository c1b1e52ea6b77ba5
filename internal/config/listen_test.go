package config

import (
	"os"
	"strings"
	"testing"
)

const mtls = "grpc_tls: {cert_file: /tls/server.crt, key_file: /tls/server.key, client_ca_file: /tls/ca.crt}"

// TestGRPCListenValidation: the gRPC port signs for any tenant, so an
// address reachable beyond loopback needs mTLS or an explicit opt-out.
func TestGRPCListenValidation(t *testing.T) {
	tests := []struct {
		name    string
		server  string // YAML flow mapping body of the server section
		wantErr string // "" means valid
	}{
		{"default", "", ""},
		{"ipv4 loopback", "grpc_listen: '127.0.0.1:9191'", ""},
		{"other ipv4 loopback", "grpc_listen: '127.0.0.2:9191'", ""},
		{"ipv6 loopback", "grpc_listen: '[::1]:9191'", ""},
		{"localhost", "grpc_listen: 'localhost:9191'", ""},
		{"all interfaces, empty host", "grpc_listen: ':9191'", `server.grpc_listen: ":9191" is reachable beyond loopback without server.grpc_tls`},
		{"all interfaces ipv4", "grpc_listen: '0.0.0.0:9191'", "is reachable beyond loopback"},
		{"all interfaces ipv6", "grpc_listen: '[::]:9191'", "is reachable beyond loopback"},
		{"private address", "grpc_listen: '10.0.0.5:9191'", "is reachable beyond loopback"},
		{"host name", "grpc_listen: 'tenantgate:9191'", "is reachable beyond loopback"},
		{"explicit opt-out", "grpc_listen: ':9191', grpc_insecure_listen: true", ""},
		{"mtls", "grpc_listen: '0.0.0.0:9191', " + mtls, ""},
		{"mtls with pinned SANs and TLS 1.3", "grpc_listen: '0.0.0.0:9191', grpc_tls: {cert_file: a, key_file: b, client_ca_file: c, allowed_client_sans: ['spiffe://tenantgate.local/envoy', envoy.internal], min_version: '1.3'}", ""},
		{"mtls on loopback", "grpc_listen: '127.0.0.1:9191', " + mtls, ""},
		{"server TLS without client CA", "grpc_listen: '0.0.0.0:9191', grpc_tls: {cert_file: a, key_file: b}", "server.grpc_tls: cert_file, key_file and client_ca_file are all required"},
		{"SANs without files", "grpc_tls: {allowed_client_sans: [envoy]}", "cert_file, key_file and client_ca_file are all required"},
		{"bad SAN", "grpc_tls: {cert_file: a, key_file: b, client_ca_file: c, allowed_client_sans: ['spiffe://a b']}", `allowed_client_sans: invalid SAN "spiffe://a b"`},
		{"empty SAN", "grpc_tls: {cert_file: a, key_file: b, client_ca_file: c, allowed_client_sans: ['']}", `allowed_client_sans: invalid SAN ""`},
		{"tls 1.1", "grpc_tls: {min_version: '1.1'}", `server.grpc_tls.min_version: "1.1" is not 1.2 or 1.3`},
		{"unix socket", "grpc_listen: 'unix:/run/tenantgate/grpc.sock'", ""},
		{"unix socket with group mode", "grpc_listen: 'unix:/run/tenantgate/grpc.sock', grpc_socket_mode: '0660'", ""},
		{"unix without path", "grpc_listen: 'unix:'", `server.grpc_listen: "unix:" needs a socket path`},
		{"world-connectable socket", "grpc_listen: 'unix:/run/t.sock', grpc_socket_mode: '0666'", "server.grpc_socket_mode: 0666 lets every local user connect"},
		{"socket mode not octal", "grpc_socket_mode: 'rw-'", `server.grpc_socket_mode: "rw-" is not an octal permission`},
		{"socket mode too large", "grpc_socket_mode: '1777'", `server.grpc_socket_mode: "1777" is not an octal permission`},
		{"no port", "grpc_listen: '9191'", `server.grpc_listen: "9191" is neither host:port nor unix:/path`},
		{"bad port", "grpc_listen: '127.0.0.1:http'", `server.grpc_listen: "127.0.0.1:http" is neither host:port nor unix:/path`},
		{"pprof on loopback", "pprof_listen: '127.0.0.1:6060'", ""},
		{"pprof on localhost", "pprof_listen: 'localhost:6060'", ""},
		{"pprof on all interfaces", "pprof_listen: ':6060'", `server.pprof_listen: ":6060" is not a loopback host:port`},
		{"pprof on a private address", "pprof_listen: '10.0.0.5:6060'", `server.pprof_listen: "10.0.0.5:6060" is not a loopback host:port`},
		{"pprof on a socket", "pprof_listen: 'unix:/tmp/p.sock'", `server.pprof_listen: "unix:/tmp/p.sock" is not a loopback host:port`},
		{"pprof on the http port", "http_listen: '127.0.0.1:9192', pprof_listen: '127.0.0.1:9192'", `server: pprof_listen and http_listen are both "127.0.0.1:9192"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("server: {"+tt.server+"}\n"), nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("want error containing %q, got none", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestGRPCListenDefaultsToLoopback(t *testing.T) {
	c, err := Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]string{"grpc_listen": c.Server.GRPCListen, "http_listen": c.Server.HTTPListen} {
		ok, err := isLoopbackListen(addr)
		if err != nil || !ok {
			t.Errorf("default %s = %q, want a loopback address (%v)", name, addr, err)
		}
	}
	if c.Server.GRPCInsecureListen || c.Server.GRPCTLS.Enabled() {
		t.Errorf("defaults enable insecure listen (%v) or TLS (%+v)", c.Server.GRPCInsecureListen, c.Server.GRPCTLS)
	}
	if m, err := ParseSocketMode(c.Server.GRPCSocketMode); err != nil || m != os.FileMode(0o600) {
		t.Errorf("default socket mode = %q (%v), want 0600", c.Server.GRPCSocketMode, err)
	}
	if c.Server.GRPCTLS.MinVersion != "1.2" {
		t.Errorf("default min TLS version = %q", c.Server.GRPCTLS.MinVersion)
	}
}

func TestIsUnixListen(t *testing.T) {
	for _, tt := range []struct {
		in   string
		path string
		ok   bool
	}{
		{"unix:/run/tg.sock", "/run/tg.sock", true},
		{"unix:rel.sock", "rel.sock", true},
		{"127.0.0.1:9191", "", false},
	} {
		p, ok := IsUnixListen(tt.in)
		if p != tt.path && ok || ok != tt.ok {
			t.Errorf("IsUnixListen(%q) = %q, %v; want %q, %v", tt.in, p, ok, tt.path, tt.ok)
		}
	}
}
