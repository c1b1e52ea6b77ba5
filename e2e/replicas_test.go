package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// platformModel is the model the platform-signed caller of the replica
// tests asks for; the tenant caller asks for stack.DemoModel, so every
// upstream record names whom it must have been signed for.
const platformModel = "anthropic.claude-3-5-sonnet-20240620-v1:0"

// loadResult counts the outcome of a request loop through Envoy.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string // first few, for the failure message
}

func (l *loadResult) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, msg)
	}
	l.mu.Unlock()
}

func (l *loadResult) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("ok=%d failed=%d first failures: %s", l.ok.Load(), l.failed.Load(), strings.Join(l.failures, " | "))
}

// loadCaller is who a load worker calls as, and which model.
type loadCaller struct {
	token, account, model string
}

// replicaCallers returns the callers of the replica tests: Alice for Acme
// (signed with Acme's role in eu-west-1) asking for stack.DemoModel, and
// Bob (signed by the platform in us-east-1) asking for platformModel.
func replicaCallers(t *testing.T, st *stack.Stack) []loadCaller {
	t.Helper()
	alice, err := st.Token(stack.AliceUserID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := st.Token(stack.BobUserID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return []loadCaller{{token: bob, model: platformModel}, {token: alice, account: stack.AcmeAccountID, model: stack.DemoModel}}
}

// converse sends one Converse request through Envoy as c.
func converse(client *http.Client, st *stack.Stack, c loadCaller) (int, []byte, error) {
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	url := st.EnvoyURL + "/model/" + strings.ReplaceAll(c.model, ":", "%3A") + "/converse"
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("authorization", "Bearer "+c.token)
	req.Header.Set("content-type", "application/json")
	if c.account != "" {
		req.Header.Set("x-account-id", c.account)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(rb), err
}

// runLoad sends Converse requests through Envoy from workers goroutines
// (worker w calls as callers[w % len(callers)]) until ctx ends. The
// returned wait blocks until every worker has stopped.
func runLoad(ctx context.Context, t *testing.T, st *stack.Stack, workers int, res *loadResult, callers []loadCaller) (wait func()) {
	t.Helper()
	client, err := st.HTTPClient("", "")
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 15 * time.Second
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := callers[w%len(callers)]
			for ctx.Err() == nil {
				status, rb, err := converse(client, st, c)
				switch {
				case err != nil:
					res.fail(err.Error())
				case status != http.StatusOK:
					res.fail(fmt.Sprintf("%d %s", status, rb))
				default:
					res.ok.Add(1)
				}
			}
		}()
	}
	return wg.Wait
}

// assertSignedForCaller checks every upstream record after the first n:
// each was signed by the identity its caller must have (the model names the
// caller), verified, and answered 200. It returns how many there were.
func assertSignedForCaller(t *testing.T, st *stack.Stack, n int) int {
	t.Helper()
	recs := newRecords(st, n)
	for _, r := range recs {
		switch r.ModelID {
		case stack.DemoModel:
			if r.Region != stack.AcmeRegion || !strings.HasPrefix(r.PrincipalARN, acmeAssumed) {
				t.Errorf("Acme's request signed in %s by %q", r.Region, r.PrincipalARN)
			}
		case platformModel:
			if r.Region != stack.DefaultRegion || r.PrincipalARN != stack.PlatformPrincipal {
				t.Errorf("Bob's request signed in %s by %q", r.Region, r.PrincipalARN)
			}
		default:
			t.Errorf("unexpected upstream request for model %q", r.ModelID)
		}
		if r.Status != http.StatusOK {
			t.Errorf("upstream answered %d (%s): signature not accepted", r.Status, r.ErrorType)
		}
		assertClean(t, r)
	}
	return len(recs)
}

// TestReplicas runs two tenantgate processes behind the shipped Envoy
// configuration's tenantgate cluster (gRPC health checks, outlier
// detection, the ext_authz retry policy) under continuous traffic:
//   - a rolling restart, each replica stopped with SIGTERM (it drains:
//     NOT_SERVING first, serving on for server.shutdown_drain) and started
//     again in turn, fails no request;
//   - a replica killed with SIGKILL fails at most the requests in flight,
//     and no request is signed for the wrong identity.
func TestReplicas(t *testing.T) {
	const workers = 8
	st := startStack(t, stack.Options{Replicas: 2, ShutdownDrain: config.DefaultShutdownDrain})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	callers := replicaCallers(t, st)

	t.Run("RollingRestartSIGTERM", func(t *testing.T) {
		n := len(st.Records())
		var res loadResult
		lctx, stop := context.WithCancel(ctx)
		wait := runLoad(lctx, t, st, workers, &res, callers)
		time.Sleep(500 * time.Millisecond)
		for i := range st.Replicas {
			began := time.Now()
			if err := st.StopReplica(i); err != nil {
				t.Errorf("stop replica %d: %v", i, err)
			}
			stopped := time.Since(began)
			if err := st.StartReplica(ctx, i); err != nil {
				stop()
				wait()
				t.Fatalf("restart replica %d: %v", i, err)
			}
			if err := st.WaitReplicaHealthy(ctx, i, true, 30*time.Second); err != nil {
				stop()
				wait()
				t.Fatal(err)
			}
			t.Logf("replica %d: SIGTERM → exit in %v, back in rotation after %v", i, stopped.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
		}
		time.Sleep(500 * time.Millisecond)
		stop()
		wait()
		t.Logf("rolling restart under load (%d workers): %s", workers, &res)
		if res.failed.Load() != 0 {
			t.Errorf("rolling restart failed %d requests, want 0: %s", res.failed.Load(), &res)
		}
		if res.ok.Load() < 50 {
			t.Errorf("only %d requests succeeded during the restart", res.ok.Load())
		}
		if got := assertSignedForCaller(t, st, n); int64(got) != res.ok.Load() {
			t.Errorf("upstream saw %d requests, clients saw %d succeed", got, res.ok.Load())
		}
	})

	t.Run("SIGKILLMidTraffic", func(t *testing.T) {
		if err := st.WaitReplicaHealthy(ctx, 1, true, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		n := len(st.Records())
		var res loadResult
		lctx, stop := context.WithCancel(ctx)
		wait := runLoad(lctx, t, st, workers, &res, callers)
		time.Sleep(time.Second)
		before := res.ok.Load()
		if err := st.KillReplica(1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		stop()
		wait()
		t.Logf("SIGKILL of 1 of 2 replicas under load (%d workers): %s", workers, &res)
		if stats, err := envoyStats(ctx, st, "cluster.tenantgate.outlier_detection.ejections_enforced_total", "cluster.tenantgate.upstream_rq_retry", "cluster.tenantgate.health_check.failure"); err == nil {
			t.Logf("Envoy: %s", stats)
		}
		if before == 0 {
			t.Fatal("no request succeeded before the kill")
		}
		if f := res.failed.Load(); f > workers {
			t.Errorf("%d requests failed, more than the %d that can be in flight: %s", f, workers, &res)
		}
		if after := res.ok.Load() - before; after < 20 {
			t.Errorf("only %d requests succeeded after the kill: the surviving replica did not take over", after)
		}
		if got := assertSignedForCaller(t, st, n); int64(got) < res.ok.Load() {
			t.Errorf("upstream saw %d requests, clients saw %d succeed", got, res.ok.Load())
		}
		// Bring the replica back so that the stack stops cleanly.
		if err := st.StartReplica(ctx, 1); err != nil {
			t.Fatal(err)
		}
	})
}

// envoyStats returns the named counters from Envoy's admin /stats.
func envoyStats(ctx context.Context, st *stack.Stack, names ...string) (string, error) {
	b, err := stack.HTTPGet(ctx, st.EnvoyAdminURL+"/stats")
	if err != nil {
		return "", err
	}
	var out []string
	for _, l := range strings.Split(b, "\n") {
		for _, n := range names {
			if strings.HasPrefix(l, n+":") {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, ", "), nil
}
