package stack

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
)

func TestWriteCertsChains(t *testing.T) {
	dir := t.TempDir()
	c, err := WriteCerts(dir, envoy.Regions)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(c.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA not parseable")
	}
	leaf := func(path string) *x509.Certificate {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	tests := []struct {
		name    string
		cert    string
		dns     string
		usage   x509.ExtKeyUsage
		trusted bool
	}{
		{"envoy localhost", c.EnvoyCert, "localhost", x509.ExtKeyUsageServerAuth, true},
		{"envoy ip", c.EnvoyCert, "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"bedrock eu-west-1", c.BedrockCert, "bedrock-runtime.eu-west-1.amazonaws.com", x509.ExtKeyUsageServerAuth, true},
		{"bedrock ap-southeast-2", c.BedrockCert, "bedrock-runtime.ap-southeast-2.amazonaws.com", x509.ExtKeyUsageServerAuth, true},
		{"bedrock control plane eu-west-1", c.BedrockCert, "bedrock.eu-west-1.amazonaws.com", x509.ExtKeyUsageServerAuth, true},
		{"bedrock wrong host", c.BedrockCert, "example.com", x509.ExtKeyUsageServerAuth, false},
		{"worker", c.WorkerCert, "", x509.ExtKeyUsageClientAuth, true},
		{"untrusted worker", c.UntrustedCert, "", x509.ExtKeyUsageClientAuth, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := leaf(tc.cert).Verify(x509.VerifyOptions{Roots: pool, DNSName: tc.dns, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			if (err == nil) != tc.trusted {
				t.Fatalf("verify err = %v, want trusted=%v", err, tc.trusted)
			}
		})
	}
	for _, p := range []string{c.WorkerCert, c.UntrustedCert} {
		uris := leaf(p).URIs
		if len(uris) != 1 || uris[0].String() != WorkerSPIFFEID {
			t.Errorf("%s URI SANs = %v", p, uris)
		}
	}
	for _, pair := range [][2]string{{c.EnvoyCert, c.EnvoyKey}, {c.BedrockCert, c.BedrockKey}, {c.WorkerCert, c.WorkerKey}} {
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Errorf("key pair %s: %v", pair[0], err)
		}
	}
}

// TestWriteCertsLink: the Envoy -> tenantgate link has its own CA, which
// signs tenantgate's server certificate and Envoy's (and the intruder's)
// client certificate, and nothing of the mesh.
func TestWriteCertsLink(t *testing.T) {
	c, err := WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := func(path string) *x509.CertPool {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("%s: no certificate", path)
		}
		return p
	}
	link, mesh := pool(c.LinkCA), pool(c.CA)
	tests := []struct {
		name      string
		cert, key string
		roots     *x509.CertPool
		dns       string
		usage     x509.ExtKeyUsage
		uri       string
		trusted   bool
	}{
		{"tenantgate server", c.TenantgateCert, c.TenantgateKey, link, TenantgateServerName, x509.ExtKeyUsageServerAuth, "", true},
		{"tenantgate server by ip", c.TenantgateCert, c.TenantgateKey, link, "127.0.0.1", x509.ExtKeyUsageServerAuth, "", true},
		{"envoy client", c.EnvoyClientCert, c.EnvoyClientKey, link, "", x509.ExtKeyUsageClientAuth, EnvoyLinkSAN, true},
		{"intruder client", c.IntruderCert, c.IntruderKey, link, "", x509.ExtKeyUsageClientAuth, IntruderLinkSAN, true},
		{"mesh worker is not a link client", c.WorkerCert, c.WorkerKey, link, "", x509.ExtKeyUsageClientAuth, WorkerSPIFFEID, false},
		{"envoy link client is not a mesh client", c.EnvoyClientCert, c.EnvoyClientKey, mesh, "", x509.ExtKeyUsageClientAuth, EnvoyLinkSAN, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: tc.roots, DNSName: tc.dns, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			if (err == nil) != tc.trusted {
				t.Fatalf("verify err = %v, want trusted=%v", err, tc.trusted)
			}
			if tc.uri != "" && (len(leaf.URIs) != 1 || leaf.URIs[0].String() != tc.uri) {
				t.Errorf("URI SANs = %v, want %s", leaf.URIs, tc.uri)
			}
		})
	}
}

func TestRewriteBootstrap(t *testing.T) {
	p := EnvoyPorts{Admin: 1, Public: 2, Mesh: 3, Tenantgate: 4, Bedrock: 5,
		ServerCert: "/t/s.crt", ServerKey: "/t/s.key", MeshCA: "/t/mesh.crt", UpstreamCA: "/t/up.crt",
		TenantgateClientCert: "/t/tg-client.crt", TenantgateClientKey: "/t/tg-client.key", TenantgateCA: "/t/tg-ca.crt"}
	out, err := RewriteBootstrap(envoy.Bootstrap, p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, gone := range []string{"/etc/envoy/tls", "/etc/ssl/certs", "0.0.0.0", "amazonaws.com, port_value: 443", "LOGICAL_DNS", "STRICT_DNS"} {
		if strings.Contains(s, gone) {
			t.Errorf("rewritten bootstrap still contains %q", gone)
		}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	var orig map[string]any
	if err := yaml.Unmarshal(envoy.Bootstrap, &orig); err != nil {
		t.Fatal(err)
	}
	// The filter chains and routes are untouched.
	hcm := func(d map[string]any, i int) any {
		l := d["static_resources"].(map[string]any)["listeners"].([]any)[i].(map[string]any)
		f := l["filter_chains"].([]any)[0].(map[string]any)["filters"].([]any)[0].(map[string]any)
		return f["typed_config"]
	}
	for i := range 2 {
		a, _ := yaml.Marshal(hcm(doc, i))
		b, _ := yaml.Marshal(hcm(orig, i))
		if string(a) != string(b) {
			t.Errorf("listener %d: HTTP connection manager changed by the rewrite", i)
		}
	}
	ports := map[string]int{}
	for _, c := range doc["static_resources"].(map[string]any)["clusters"].([]any) {
		cm := c.(map[string]any)
		sa := cm["load_assignment"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["lb_endpoints"].([]any)[0].(map[string]any)["endpoint"].(map[string]any)["address"].(map[string]any)["socket_address"].(map[string]any)
		if sa["address"] != "127.0.0.1" {
			t.Errorf("cluster %v address %v", cm["name"], sa["address"])
		}
		ports[cm["name"].(string)] = sa["port_value"].(int)
		if strings.HasPrefix(cm["name"].(string), "bedrock_") {
			tls := cm["transport_socket"].(map[string]any)["typed_config"].(map[string]any)
			if sni := tls["sni"].(string); !strings.HasPrefix(sni, "bedrock-runtime.") && !strings.HasPrefix(sni, "bedrock.") {
				t.Errorf("cluster %v lost its SNI", cm["name"])
			}
		}
	}
	if ports["tenantgate"] != 4 || ports["bedrock_eu_west_1"] != 5 || ports["bedrock_control_eu_west_1"] != 5 || len(ports) != 1+2*len(envoy.Regions) {
		t.Errorf("cluster ports %v", ports)
	}
	for _, f := range []string{"/t/s.crt", "/t/s.key", "/t/mesh.crt", "/t/up.crt", "/t/tg-client.crt", "/t/tg-client.key", "/t/tg-ca.crt"} {
		if !strings.Contains(s, f) {
			t.Errorf("TLS file %s not in rewritten bootstrap", f)
		}
	}
}

// tenantgateCluster returns the rewritten tenantgate cluster.
func tenantgateCluster(t *testing.T, out []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc["static_resources"].(map[string]any)["clusters"].([]any) {
		if cm := c.(map[string]any); cm["name"] == "tenantgate" {
			return cm
		}
	}
	t.Fatal("no tenantgate cluster")
	return nil
}

// TestRewriteBootstrapLinks: the default keeps the shipped mutual TLS of
// the tenantgate cluster (SNI and SAN check unchanged); LinkUnix and
// LinkPlaintext drop it, LinkUnix with a pipe endpoint.
func TestRewriteBootstrapLinks(t *testing.T) {
	base := EnvoyPorts{Admin: 1, Public: 2, Mesh: 3, Tenantgate: 4, Bedrock: 5,
		ServerCert: "a", ServerKey: "b", MeshCA: "c", UpstreamCA: "d",
		TenantgateClientCert: "/t/tg-client.crt", TenantgateClientKey: "/t/tg-client.key", TenantgateCA: "/t/tg-ca.crt"}
	tests := []struct {
		link    Link
		socket  string
		wantTLS bool
		wantEP  string
	}{
		{"", "", true, "socket_address"},
		{LinkMTLS, "", true, "socket_address"},
		{LinkPlaintext, "", false, "socket_address"},
		{LinkUnix, "/run/tg.sock", false, "pipe"},
	}
	for _, tt := range tests {
		t.Run(string(tt.link), func(t *testing.T) {
			p := base
			p.TenantgateLink, p.TenantgateSocket = tt.link, tt.socket
			out, err := RewriteBootstrap(envoy.Bootstrap, p)
			if err != nil {
				t.Fatal(err)
			}
			cm := tenantgateCluster(t, out)
			ts, hasTLS := cm["transport_socket"].(map[string]any)
			if hasTLS != tt.wantTLS {
				t.Fatalf("transport_socket present = %v, want %v", hasTLS, tt.wantTLS)
			}
			if hasTLS {
				tc := ts["typed_config"].(map[string]any)
				ctx := tc["common_tls_context"].(map[string]any)
				cert := ctx["tls_certificates"].([]any)[0].(map[string]any)
				if tc["sni"] != TenantgateServerName || cert["certificate_chain"].(map[string]any)["filename"] != "/t/tg-client.crt" ||
					ctx["validation_context"].(map[string]any)["trusted_ca"].(map[string]any)["filename"] != "/t/tg-ca.crt" {
					t.Errorf("tenantgate TLS = %v", tc)
				}
			}
			addr := cm["load_assignment"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["lb_endpoints"].([]any)[0].(map[string]any)["endpoint"].(map[string]any)["address"].(map[string]any)
			if _, ok := addr[tt.wantEP]; !ok {
				t.Errorf("endpoint address = %v, want %s", addr, tt.wantEP)
			}
			if tt.link == LinkUnix && addr["pipe"].(map[string]any)["path"] != tt.socket {
				t.Errorf("pipe = %v", addr["pipe"])
			}
		})
	}
	bad := base
	bad.TenantgateLink = LinkUnix
	if _, err := RewriteBootstrap(envoy.Bootstrap, bad); err == nil {
		t.Error("LinkUnix without a socket accepted")
	}
	bad.TenantgateLink = "carrier-pigeon"
	if _, err := RewriteBootstrap(envoy.Bootstrap, bad); err == nil {
		t.Error("unknown link accepted")
	}
}

func TestRewriteBootstrapRejectsUnknown(t *testing.T) {
	tests := map[string]string{
		"not yaml":                    "{{{",
		"unknown cluster":             strings.Replace(string(envoy.Bootstrap), "- name: tenantgate\n", "- name: something_else\n", 1),
		"unknown tls file":            strings.Replace(string(envoy.Bootstrap), "/etc/envoy/tls/server.key", "/elsewhere/server.key", 1),
		"unknown tenantgate tls file": strings.Replace(string(envoy.Bootstrap), "/etc/envoy/tls/tenantgate-client.crt", "/elsewhere/client.crt", 1),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := RewriteBootstrap([]byte(in), EnvoyPorts{ServerCert: "a", ServerKey: "b", MeshCA: "c", UpstreamCA: "d", TenantgateClientCert: "e", TenantgateClientKey: "f", TenantgateCA: "g"}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestTokens(t *testing.T) {
	s := &Stack{}
	if err := s.startIssuer(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, srv := range s.servers {
			srv.Close()
		}
	}()
	resp, err := http.Get(s.Issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kid, N, E string }
	}
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %v %+v", err, set)
	}
	n, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].N)
	e, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}

	rs, err := s.Token(AliceUserID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := s.HS256Token(BobUserID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tok, sub string
		key            any
		ok             bool
	}{
		{"rs256 via jwks", rs, AliceUserID, pub, true},
		{"hs256 secret", hs, BobUserID, []byte(HS256Secret), true},
		{"hs256 wrong secret", hs, BobUserID, []byte("another-secret-another-secret-0000"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := jwt.Parse(tc.tok, func(tk *jwt.Token) (any, error) {
				if _, ok := tc.key.(*rsa.PublicKey); ok && tk.Header["kid"] != set.Keys[0].Kid {
					t.Errorf("kid %v", tk.Header["kid"])
				}
				return tc.key, nil
			}, jwt.WithIssuer(s.Issuer), jwt.WithAudience("authenticated"), jwt.WithExpirationRequired())
			if (err == nil) != tc.ok {
				t.Fatalf("parse err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				if sub, _ := tok.Claims.GetSubject(); sub != tc.sub {
					t.Errorf("sub %q", sub)
				}
			}
		})
	}
}
