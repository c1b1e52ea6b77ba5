package store

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// cutProxy forwards to PostgreSQL until cut: then it closes its port and
// every connection, as when the database goes away.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func startCutProxy(t *testing.T, databaseURL string) (*cutProxy, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: u.Host}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(p.Cut)
	u.Host = ln.Addr().String()
	return p, u.String()
}

// Cut closes the port and every connection.
func (p *cutProxy) Cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.cut = true
}

// TestStaleAfterStoreLoss: PostgreSQL goes away (queries and the LISTEN
// connection cut) for longer than cache_ttl. Answers read before stay
// available through stale_if_error although the listener lost its
// connection; the API key a NOTIFY invalidated before the outage is not
// answered from its old entry; accounts never read are unavailable; Ping
// (readiness) holds.
func TestStaleAfterStoreLoss(t *testing.T) {
	direct := seededDB(t)
	proxy, through := startCutProxy(t, direct)
	ctx := context.Background()
	cfg := storeConfig()
	cfg.DatabaseURL = through
	cfg.CacheTTL = config.Duration(200 * time.Millisecond)
	cfg.StaleIfError = config.Duration(time.Minute)
	cfg.QueryTimeout = config.Duration(time.Second)
	reg := prometheus.NewRegistry()
	s, err := Open(ctx, cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p, err := s.Plan(ctx, acme); err != nil || p.Tier != "tier_200_1000" {
		t.Fatalf("plan before the outage: %+v %v", p, err)
	}
	if k, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic); err != nil || k.Status != tenant.KeyActive {
		t.Fatalf("key before the outage: %+v %v", k, err)
	}
	// Revoke the key; wait for its NOTIFY to remove the cached entry.
	exec(t, direct, `UPDATE public.api_keys SET status = 'revoked' WHERE key_id = '`+filestore.DemoAPIKeyID+`'`)
	deadline := time.Now().Add(5 * time.Second)
	for metricstest.Value(t, reg, "tenantgate_store_cache_invalidations_total", "table", "api_keys") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("revocation NOTIFY not received")
		}
		time.Sleep(10 * time.Millisecond)
	}

	proxy.Cut()
	time.Sleep(500 * time.Millisecond) // past cache_ttl; the listener has noticed
	if p, err := s.Plan(ctx, acme); err != nil || p.Tier != "tier_200_1000" {
		t.Fatalf("plan during the outage: %+v %v, want the stale answer", p, err)
	}
	if k, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic); err == nil {
		t.Fatalf("invalidated key answered during the outage: %+v", k)
	} else if errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("invalidated key: %v, want an outage error", err)
	}
	if _, err := s.Plan(ctx, filestore.DemoBobAccountID); err == nil || errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("never read account during the outage: %v, want an outage error", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping during the outage: %v, want nil (stale answers are served)", err)
	}
	if n := metricstest.Value(t, reg, "tenantgate_store_stale_answers_total", "kind", "plan"); n < 1 {
		t.Fatalf("stale plan answers = %v", n)
	}
}
