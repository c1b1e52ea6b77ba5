package envoy_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// stallingAuthz is an ext_authz server that holds every Check until its
// context ends (Envoy's ext_authz timeout), counting how many it holds at
// once.
type stallingAuthz struct {
	authv3.UnimplementedAuthorizationServer
	mu                    sync.Mutex
	inFlight, peak, total int
}

func (a *stallingAuthz) Check(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.mu.Lock()
	a.inFlight++
	a.total++
	a.peak = max(a.peak, a.inFlight)
	a.mu.Unlock()
	<-ctx.Done()
	a.mu.Lock()
	a.inFlight--
	a.mu.Unlock()
	return nil, status.Error(codes.Unavailable, "stalled")
}

// reset waits until no Check is held and forgets the counts.
func (a *stallingAuthz) reset(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a.mu.Lock()
		idle := a.inFlight == 0
		if idle {
			a.peak, a.total = 0, 0
		}
		a.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("ext_authz calls still held after 10s")
		}
	}
}

func (a *stallingAuthz) counts() (peak, total int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.peak, a.total
}

// burstResult is what became of n streams opened at once on one connection.
type burstResult struct {
	answered int  // streams that got response headers
	closed   bool // the server closed the connection (GOAWAY or EOF) first
}

// burst opens n GET streams in one write on a new HTTP/2 connection and
// waits until each is answered, or the connection is closed.
func burst(t *testing.T, addr string, tlsCfg *tls.Config, n int) burstResult {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(clientPreface()); err != nil {
		t.Fatal(err)
	}
	// Acknowledge the server's SETTINGS, so that its stream limit is in
	// force by the book, then open every stream in one write.
	for {
		f, err := readFrame(conn)
		if err != nil {
			t.Fatalf("waiting for SETTINGS: %v", err)
		}
		if f.typ == frameSettings && f.flags&flagAck == 0 {
			break
		}
	}
	b := appendFrame(nil, frameSettings, flagAck, 0, nil)
	for i := range n {
		b = getRequest(b, uint32(2*i+1), addr)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	var r burstResult
	answered := map[uint32]bool{}
	for len(answered) < n {
		f, err := readFrame(conn)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("no answer within 30s: %d of %d streams answered", len(answered), n)
			}
			r.closed = true
			break
		}
		switch f.typ {
		case frameHeaders:
			answered[f.stream] = true
		case frameGoAway:
			r.closed = true
		}
		if r.closed {
			break
		}
	}
	r.answered = len(answered)
	return r
}

// TestHTTP2StreamLimitEnforced holds every request in ext_authz and opens
// streams on one HTTP/2 connection: up to the shipped
// max_concurrent_streams they are all served at once; a client that opens
// half again as many gets its connection closed, and tenantgate never holds
// more than the limit. Without the limit (Envoy 1.40 allows 1024) all of
// them would reach tenantgate at once.
func TestHTTP2StreamLimitEnforced(t *testing.T) {
	limit := toInt(field(shippedDoc(t), "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0,
		"typed_config", "http2_protocol_options", "max_concurrent_streams"))
	if limit <= 0 || limit > 200 {
		t.Fatalf("shipped max_concurrent_streams = %d, want a small positive limit", limit)
	}
	authz := &stallingAuthz{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, authz)
	healthpb.RegisterHealthServer(g, health.NewServer()) // SERVING: Envoy health-checks the cluster
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	addr, _, tlsCfg := limitedEnvoy(t, nil, lis.Addr().(*net.TCPAddr).Port)

	t.Run("at the limit", func(t *testing.T) {
		authz.reset(t)
		r := burst(t, addr, tlsCfg, limit)
		peak, _ := authz.counts()
		if r.closed || r.answered != limit || peak != limit {
			t.Errorf("%d streams: closed=%v answered=%d, ext_authz held %d at once; want all answered and held together",
				limit, r.closed, r.answered, peak)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		authz.reset(t)
		n := limit + limit/2
		r := burst(t, addr, tlsCfg, n)
		peak, total := authz.counts()
		t.Logf("%d streams: closed=%v answered=%d; ext_authz saw %d, at most %d at once", n, r.closed, r.answered, total, peak)
		if !r.closed || peak > limit {
			t.Errorf("%d streams on one connection: closed=%v, ext_authz held %d at once; want the connection closed and at most %d held",
				n, r.closed, peak, limit)
		}
	})
}
