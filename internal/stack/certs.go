package stack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// WorkerSPIFFEID is the URI SAN of the trusted worker client certificate.
const WorkerSPIFFEID = "spiffe://cluster.local/ns/agents/sa/worker"

// Names on the Envoy -> tenantgate link: tenantgate's server certificate is
// for TenantgateServerName (the SNI and SAN Envoy's tenantgate cluster
// checks), Envoy's client certificate carries the URI SAN EnvoyLinkSAN, and
// IntruderLinkSAN is a client certificate of the same CA that tenantgate
// must refuse when SANs are pinned.
const (
	TenantgateServerName = "tenantgate"
	EnvoyLinkSAN         = "spiffe://tenantgate.local/envoy"
	IntruderLinkSAN      = "spiffe://tenantgate.local/intruder"
)

// Certs are the PEM files of the stack's test PKI, all inside the stack dir.
type Certs struct {
	// CA signs every certificate below except the untrusted client's; it is
	// the bundle clients use to trust Envoy, Envoy uses to trust the fake
	// Bedrock endpoint, and the mesh listener uses for client certificates.
	CA string
	// EnvoyCert/EnvoyKey: Envoy's server certificate for 127.0.0.1 and localhost.
	EnvoyCert, EnvoyKey string
	// BedrockCert/BedrockKey: the fake Bedrock endpoint's certificate for
	// *.amazonaws.com and every regional bedrock-runtime and bedrock host.
	BedrockCert, BedrockKey string
	// WorkerCert/WorkerKey: a client certificate with URI SAN WorkerSPIFFEID.
	WorkerCert, WorkerKey string
	// UntrustedCert/UntrustedKey: a client certificate with the same URI SAN
	// signed by a CA nobody trusts.
	UntrustedCert, UntrustedKey string

	// The Envoy -> tenantgate link has its own CA (LinkCA), so that no mesh
	// client certificate can reach tenantgate's gRPC port.
	LinkCA string
	// TenantgateCert/TenantgateKey: tenantgate's gRPC server certificate for
	// TenantgateServerName, localhost and 127.0.0.1.
	TenantgateCert, TenantgateKey string
	// EnvoyClientCert/EnvoyClientKey: the client certificate Envoy's
	// tenantgate cluster presents (URI SAN EnvoyLinkSAN).
	EnvoyClientCert, EnvoyClientKey string
	// IntruderCert/IntruderKey: a client certificate of LinkCA with the URI
	// SAN IntruderLinkSAN.
	IntruderCert, IntruderKey string
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(name string) (*issuer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"tenantgate test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca cert: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("ca cert: %w", err)
	}
	return &issuer{cert: cert, key: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

type leafSpec struct {
	cn     string
	dns    []string
	ips    []net.IP
	uris   []string
	client bool
}

func (ca *issuer) issue(s leafSpec) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("leaf key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: s.cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
	}
	if s.client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, u := range s.uris {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, nil, fmt.Errorf("leaf uri san: %w", err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("leaf cert %s: %w", s.cn, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("leaf key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// WriteCerts creates the test PKI in dir: a CA, Envoy and fake Bedrock server
// certificates for regions, a trusted worker client certificate and an
// untrusted one; and the Envoy -> tenantgate link's own CA with tenantgate's
// server certificate, Envoy's client certificate and an intruder's.
func WriteCerts(dir string, regions []string) (Certs, error) {
	ca, caPEM, err := newCA("tenantgate test CA")
	if err != nil {
		return Certs{}, err
	}
	other, _, err := newCA("untrusted test CA")
	if err != nil {
		return Certs{}, err
	}
	link, linkPEM, err := newCA("tenantgate link test CA")
	if err != nil {
		return Certs{}, err
	}
	c := Certs{
		CA:            filepath.Join(dir, "ca.crt"),
		EnvoyCert:     filepath.Join(dir, "envoy-server.crt"),
		EnvoyKey:      filepath.Join(dir, "envoy-server.key"),
		BedrockCert:   filepath.Join(dir, "bedrock.crt"),
		BedrockKey:    filepath.Join(dir, "bedrock.key"),
		WorkerCert:    filepath.Join(dir, "worker.crt"),
		WorkerKey:     filepath.Join(dir, "worker.key"),
		UntrustedCert: filepath.Join(dir, "untrusted-worker.crt"),
		UntrustedKey:  filepath.Join(dir, "untrusted-worker.key"),

		LinkCA:          filepath.Join(dir, "tenantgate-ca.crt"),
		TenantgateCert:  filepath.Join(dir, "tenantgate-server.crt"),
		TenantgateKey:   filepath.Join(dir, "tenantgate-server.key"),
		EnvoyClientCert: filepath.Join(dir, "tenantgate-client.crt"),
		EnvoyClientKey:  filepath.Join(dir, "tenantgate-client.key"),
		IntruderCert:    filepath.Join(dir, "tenantgate-intruder.crt"),
		IntruderKey:     filepath.Join(dir, "tenantgate-intruder.key"),
	}
	if err := os.WriteFile(c.CA, caPEM, 0o644); err != nil {
		return Certs{}, fmt.Errorf("write ca: %w", err)
	}
	if err := os.WriteFile(c.LinkCA, linkPEM, 0o644); err != nil {
		return Certs{}, fmt.Errorf("write link ca: %w", err)
	}
	bedrockHosts := []string{"*.amazonaws.com"}
	for _, r := range regions {
		bedrockHosts = append(bedrockHosts, "bedrock-runtime."+r+".amazonaws.com", "bedrock."+r+".amazonaws.com")
	}
	leaves := []struct {
		ca        *issuer
		spec      leafSpec
		cert, key string
	}{
		{ca, leafSpec{cn: "envoy", dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}, c.EnvoyCert, c.EnvoyKey},
		{ca, leafSpec{cn: "bedrock-runtime.amazonaws.com", dns: bedrockHosts}, c.BedrockCert, c.BedrockKey},
		{ca, leafSpec{cn: "worker", uris: []string{WorkerSPIFFEID}, client: true}, c.WorkerCert, c.WorkerKey},
		{other, leafSpec{cn: "worker", uris: []string{WorkerSPIFFEID}, client: true}, c.UntrustedCert, c.UntrustedKey},
		{link, leafSpec{cn: TenantgateServerName, dns: []string{TenantgateServerName, "localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}, c.TenantgateCert, c.TenantgateKey},
		{link, leafSpec{cn: "envoy", uris: []string{EnvoyLinkSAN}, client: true}, c.EnvoyClientCert, c.EnvoyClientKey},
		{link, leafSpec{cn: "intruder", uris: []string{IntruderLinkSAN}, client: true}, c.IntruderCert, c.IntruderKey},
	}
	for _, l := range leaves {
		cp, kp, err := l.ca.issue(l.spec)
		if err != nil {
			return Certs{}, err
		}
		if err := os.WriteFile(l.cert, cp, 0o644); err != nil {
			return Certs{}, fmt.Errorf("write cert: %w", err)
		}
		if err := os.WriteFile(l.key, kp, 0o600); err != nil {
			return Certs{}, fmt.Errorf("write key: %w", err)
		}
	}
	return c, nil
}
