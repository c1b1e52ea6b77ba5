package server

import (
	"crypto/x509"
	"net/url"
	"testing"
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
