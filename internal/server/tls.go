package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// MutualTLS describes the gRPC listener's mutual TLS: the server's
// certificate, the CA its clients' certificates must chain to, and
// optionally the client SANs accepted.
type MutualTLS struct {
	CertFile, KeyFile, ClientCAFile string
	// AllowedClientSANs: entries containing "://" match URI SANs, others DNS
	// SANs, exactly. Empty accepts any client certificate of the CA.
	AllowedClientSANs []string
	// MinVersion is tls.VersionTLS12 or tls.VersionTLS13 (default 1.2).
	MinVersion uint16
}

// Config loads the files and returns a server tls.Config that requires and
// verifies a client certificate on every handshake. Handshakes without one,
// with one of another CA, or with no allowed SAN fail before any RPC.
func (m MutualTLS) Config() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("grpc tls: load certificate %s: %w", m.CertFile, err)
	}
	caPEM, err := os.ReadFile(m.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("grpc tls: read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("grpc tls: client CA %s holds no PEM certificate", m.ClientCAFile)
	}
	minVersion := m.MinVersion
	if minVersion == 0 {
		minVersion = tls.VersionTLS12
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   minVersion,
		NextProtos:   []string{"h2"},
	}
	if len(m.AllowedClientSANs) > 0 {
		allowed := slices.Clone(m.AllowedClientSANs)
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			if !sanAllowed(cs.PeerCertificates[0], allowed) {
				return errors.New("client certificate SAN not allowed")
			}
			return nil
		}
	}
	return cfg, nil
}

func sanAllowed(c *x509.Certificate, allowed []string) bool {
	for _, want := range allowed {
		if strings.Contains(want, "://") {
			for _, u := range c.URIs {
				if u.String() == want {
					return true
				}
			}
			continue
		}
		for _, d := range c.DNSNames {
			if strings.EqualFold(d, want) {
				return true
			}
		}
	}
	return false
}
