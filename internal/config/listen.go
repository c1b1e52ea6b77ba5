package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// UnixPrefix marks a listen address as a Unix domain socket path
// ("unix:/run/tenantgate/grpc.sock").
const UnixPrefix = "unix:"

// Default listen addresses: loopback only. tenantgate's gRPC port hands out
// signatures and session tokens, so reaching it from elsewhere must be a
// deliberate choice (grpc_tls or grpc_insecure_listen).
const (
	DefaultGRPCListen     = "127.0.0.1:9191"
	DefaultHTTPListen     = "127.0.0.1:9192"
	DefaultGRPCSocketMode = "0600"
)

// GRPCTLS configures mutual TLS on the gRPC listener: tenantgate presents
// CertFile/KeyFile and requires every client (Envoy) to present a
// certificate that chains to ClientCAFile. All three files are required
// once any field is set. Certificates are read at start (no reload).
type GRPCTLS struct {
	// CertFile is tenantgate's PEM server certificate (chain).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of cert_file.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile is the PEM bundle client certificates must chain to; use a
	// CA that signs only Envoy's client certificate (not the mesh CA of
	// service callers), or pin allowed_client_sans.
	ClientCAFile string `yaml:"client_ca_file"`
	// AllowedClientSANs also requires, when not empty, the client
	// certificate to carry one of these SANs: entries containing "://" match
	// URI SANs (spiffe://...), others DNS SANs, exactly.
	AllowedClientSANs []string `yaml:"allowed_client_sans"`
	// MinVersion is the lowest TLS version accepted: "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Enabled reports whether any mTLS setting is present.
func (t GRPCTLS) Enabled() bool {
	return t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != "" || len(t.AllowedClientSANs) > 0
}

// IsUnixListen reports whether addr names a Unix domain socket, and its path.
func IsUnixListen(addr string) (path string, ok bool) {
	return strings.CutPrefix(addr, UnixPrefix)
}

// isLoopbackListen reports whether a host:port listen address binds only
// loopback interfaces. An empty host, 0.0.0.0, :: and every name other than
// localhost count as reachable from elsewhere.
func isLoopbackListen(hostport string) (bool, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false, fmt.Errorf("port %q is not a number", port)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false, nil
	}
	return ip.IsLoopback(), nil
}

// ParseSocketMode reads an octal permission string such as "0600".
func ParseSocketMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission such as 0600", s)
	}
	return os.FileMode(m), nil
}

func (s *Server) validateGRPC() []error {
	var errs []error
	if path, ok := IsUnixListen(s.GRPCListen); ok {
		if path == "" || strings.ContainsRune(path, 0) {
			errs = append(errs, fmt.Errorf("server.grpc_listen: %q needs a socket path after unix:", s.GRPCListen))
		}
	} else {
		loopback, err := isLoopbackListen(s.GRPCListen)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("server.grpc_listen: %q is neither host:port nor unix:/path: %v", s.GRPCListen, err))
		case !loopback && !s.GRPCTLS.Enabled() && !s.GRPCInsecureListen:
			errs = append(errs, fmt.Errorf("server.grpc_listen: %q is reachable beyond loopback without server.grpc_tls; "+
				"anyone who reaches it can obtain signatures: configure server.grpc_tls (mTLS with Envoy), "+
				"listen on 127.0.0.1 or unix:/path, or set server.grpc_insecure_listen: true if a network policy already admits only Envoy", s.GRPCListen))
		}
	}
	if mode, err := ParseSocketMode(s.GRPCSocketMode); err != nil {
		errs = append(errs, fmt.Errorf("server.grpc_socket_mode: %v", err))
	} else if mode&0o007 != 0 {
		errs = append(errs, fmt.Errorf("server.grpc_socket_mode: %s lets every local user connect; allow owner and group at most", s.GRPCSocketMode))
	}
	t := s.GRPCTLS
	if t.Enabled() {
		if t.CertFile == "" || t.KeyFile == "" || t.ClientCAFile == "" {
			errs = append(errs, errors.New("server.grpc_tls: cert_file, key_file and client_ca_file are all required (tenantgate accepts only mutual TLS)"))
		}
		for _, san := range t.AllowedClientSANs {
			if san == "" || strings.ContainsAny(san, " \t\r\n") {
				errs = append(errs, fmt.Errorf("server.grpc_tls.allowed_client_sans: invalid SAN %q", san))
			}
		}
	}
	switch t.MinVersion {
	case "1.2", "1.3":
	default:
		errs = append(errs, fmt.Errorf("server.grpc_tls.min_version: %q is not 1.2 or 1.3", t.MinVersion))
	}
	return errs
}

// TLSMinVersion is MinVersion as a crypto/tls constant.
func (t GRPCTLS) TLSMinVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}
