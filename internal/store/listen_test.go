package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/tenant"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

// poolerProxy stands in for a transaction-mode pooler in front of
// PostgreSQL: it forwards every byte, except that it drops the server's
// NotificationResponse messages, so LISTEN through it succeeds and then
// delivers nothing, as through Supavisor or PgBouncer in transaction mode.
// Clients must use sslmode=disable (the proxy parses the server's
// messages).
type poolerProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
}

// startPoolerProxy listens on addr ("127.0.0.1:0" for any port) and
// forwards to the PostgreSQL server of databaseURL. It returns the proxy
// and databaseURL rewritten to go through it.
func startPoolerProxy(t *testing.T, addr, databaseURL string) (*poolerProxy, string, error) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	p := &poolerProxy{ln: ln, target: u.Host}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return p, u.String(), nil
}

func (p *poolerProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

func (p *poolerProxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(server, client) //nolint:errcheck // either side closing ends the relay
		done <- struct{}{}
	}()
	go func() {
		copyDroppingNotifications(client, server) //nolint:errcheck // as above
		done <- struct{}{}
	}()
	<-done
}

// copyDroppingNotifications copies backend messages (type byte, int32
// length including itself, body) from src to dst, except
// NotificationResponse ('A').
func copyDroppingNotifications(dst io.Writer, src io.Reader) error {
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:]))
		if n < 4 {
			return errors.New("bad message length")
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(src, body); err != nil {
			return err
		}
		if hdr[0] == 'A' {
			continue
		}
		if _, err := dst.Write(append(append([]byte(nil), hdr...), body...)); err != nil {
			return err
		}
	}
}

// listenActive reads tenantgate_store_listen_active from reg (-1: absent).
func listenActive(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tenantgate_store_listen_active" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func listenerBackends(t *testing.T, databaseURL string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tenantgate-listener' AND datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func seededDB(t *testing.T) string {
	t.Helper()
	url := testpg.Start(t)
	if err := Migrate(context.Background(), url, true, nil); err != nil {
		t.Fatal(err)
	}
	exec(t, url, seed)
	return url
}

// revocationSeen opens the store with cfg, warms the demo key, revokes it
// in the database and reports whether the store sees the revocation within
// one second (the cache TTL is five minutes).
func revocationSeen(t *testing.T, s Store, directURL string) bool {
	t.Helper()
	ctx := context.Background()
	if k, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic); err != nil || k.Status != tenant.KeyActive {
		t.Fatalf("key before revocation: %+v %v", k, err)
	}
	exec(t, directURL, `UPDATE public.api_keys SET status = 'revoked' WHERE key_id = '`+filestore.DemoAPIKeyID+`'`)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if k, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic); err == nil && k.Status == tenant.KeyRevoked {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestListenDatabaseURL: with database_url through a pooler that delivers no
// notifications, a revocation reaches the cache through
// listen_database_url; without it, the same revocation waits out the TTL
// (the control that shows the proxy behaves like the pooler).
func TestListenDatabaseURL(t *testing.T) {
	direct := seededDB(t)
	_, pooled, err := startPoolerProxy(t, "127.0.0.1:0", direct)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("control: LISTEN through the pooler", func(t *testing.T) {
		cfg := storeConfig()
		cfg.DatabaseURL = pooled
		s, err := Open(ctx, cfg, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if revocationSeen(t, s, direct) {
			t.Fatal("revocation arrived through the notification-dropping proxy: the control does not simulate a transaction-mode pooler")
		}
		exec(t, direct, `UPDATE public.api_keys SET status = 'active'`)
	})

	t.Run("separate listen URL", func(t *testing.T) {
		cfg := storeConfig()
		cfg.DatabaseURL = pooled
		cfg.ListenDatabaseURL = direct
		reg := prometheus.NewRegistry()
		s, err := Open(ctx, cfg, nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		if got := listenActive(t, reg); got != 1 {
			t.Errorf("tenantgate_store_listen_active = %v, want 1", got)
		}
		if !revocationSeen(t, s, direct) {
			t.Error("revocation not seen within 1s through listen_database_url")
		}
		s.Close()
		if got := listenActive(t, reg); got != 0 {
			t.Errorf("tenantgate_store_listen_active after Close = %v, want 0", got)
		}
	})
}

// TestTransactionPoolerNotListened: database_url on port 6543 (a
// transaction-mode pooler) without listen_database_url: tenantgate serves
// queries, does not LISTEN, warns with the consequence and exports
// tenantgate_store_listen_active 0.
func TestTransactionPoolerNotListened(t *testing.T) {
	direct := seededDB(t)
	_, pooled, err := startPoolerProxy(t, "127.0.0.1:6543", direct)
	if err != nil {
		t.Skipf("port 6543 unavailable for the simulated pooler: %v", err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	cfg := storeConfig()
	cfg.DatabaseURL = pooled
	reg := prometheus.NewRegistry()
	s, err := Open(context.Background(), cfg, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if k, err := s.APIKeyByPublic(context.Background(), filestore.DemoAPIKeyPublic); err != nil || k.Status != tenant.KeyActive {
		t.Fatalf("queries through the pooler: %+v %v", k, err)
	}
	if got := listenActive(t, reg); got != 0 {
		t.Errorf("tenantgate_store_listen_active = %v, want 0", got)
	}
	if n := listenerBackends(t, direct); n != 0 {
		t.Errorf("%d LISTEN connections through the transaction-mode pooler, want 0", n)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, want := range []string{"level=WARN", "transaction-mode pooler", "store.cache_ttl 5m0s", "TENANTGATE_LISTEN_DATABASE_URL"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
