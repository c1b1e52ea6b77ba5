// Package soak holds tenantgate's soak run: Envoy + tenantgate + fake AWS +
// PostgreSQL under steady load while tenants churn (routes added, moved to
// another region, disabled and re-enabled, API keys revoked and replaced).
// It prints tenantgate's memory and goroutine counts over time and how long
// each change took to be honoured. It is a script, not a timed test:
// TestSoak is skipped unless TENANTGATE_SOAK_DURATION is set
// (scripts/soak.sh sets it).
package soak

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/stack"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

// Settings from the environment (scripts/soak.sh).
type settings struct {
	duration time.Duration // TENANTGATE_SOAK_DURATION (e.g. 10m)
	rps      int           // TENANTGATE_SOAK_RPS: target requests per second (default 40)
	tenants  int           // TENANTGATE_SOAK_TENANTS (default 30)
	churn    time.Duration // TENANTGATE_SOAK_CHURN: pause between changes (default 2s)
	sample   time.Duration // TENANTGATE_SOAK_SAMPLE: metrics interval (default duration/20, 5s..60s)
	warmup   time.Duration // first part of the run not used for the flatness figures
}

func loadSettings(t *testing.T) settings {
	d, err := time.ParseDuration(os.Getenv("TENANTGATE_SOAK_DURATION"))
	if err != nil || d <= 0 {
		t.Skip("soak run: set TENANTGATE_SOAK_DURATION (scripts/soak.sh)")
	}
	s := settings{duration: d, rps: envInt("TENANTGATE_SOAK_RPS", 40), tenants: envInt("TENANTGATE_SOAK_TENANTS", 30), churn: 2 * time.Second}
	if v, err := time.ParseDuration(os.Getenv("TENANTGATE_SOAK_CHURN")); err == nil && v > 0 {
		s.churn = v
	}
	s.sample = min(max(d/20, 5*time.Second), time.Minute)
	if v, err := time.ParseDuration(os.Getenv("TENANTGATE_SOAK_SAMPLE")); err == nil && v > 0 {
		s.sample = v
	}
	s.warmup = min(d/5, time.Minute)
	return s
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
		return n
	}
	return def
}

func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

func randAlnum(n int) string {
	const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = abc[randInt(len(abc))]
	}
	return string(b)
}

// tenant is one enterprise account of the run and its current state.
type tenant struct {
	account string
	mu      sync.Mutex
	key     string // pk_...:sk_... currently active
	region  string
	enabled bool
	busy    bool // a change is being verified: load skips it
}

// soaker drives one run.
type soaker struct {
	t       *testing.T
	st      *stack.Stack
	db      *pgxpool.Pool
	client  *http.Client
	tenants []*tenant
	regions []string

	recMu sync.Mutex // ResetRecords vs. a probe scanning records

	sent, ok2xx, refused4xx, failed5xx, errs atomic.Int64

	honourMu sync.Mutex
	honour   map[string][]time.Duration // change kind -> times to be honoured
	unhonour map[string]int             // changes not honoured within the bound
}

const (
	tier          = stack.AcmeTier
	honourTimeout = 15 * time.Second
)

func TestSoak(t *testing.T) {
	cfg := loadSettings(t)
	ctx := context.Background()
	url := testpg.Start(t)
	if err := app.Migrate(ctx, url, true, nil); err != nil {
		t.Fatal(err)
	}
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &soaker{t: t, db: db, honour: map[string][]time.Duration{}, unhonour: map[string]int{}}
	// Regions the shipped Envoy routes (the fake Bedrock serves them all).
	s.regions = slices.Clone(envoy.Regions)
	s.seed(ctx, cfg.tenants)

	sctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	st, err := stack.Start(sctx, stack.Options{DatabaseURL: url, EnvoyBin: stack.RequireEnvoy(t), StreamDelay: time.Millisecond})
	cancel()
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("stack logs:\n%s", st.LogTails(4000))
		}
		_ = st.Stop()
	}()
	s.st = st
	if s.client, err = st.HTTPClient("", ""); err != nil {
		t.Fatal(err)
	}

	fmt.Printf("soak: %s at %d req/s over %d enterprise tenants, one change every %s; samples every %s\n",
		cfg.duration, cfg.rps, cfg.tenants, cfg.churn, cfg.sample)
	runCtx, stop := context.WithTimeout(ctx, cfg.duration)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.load(runCtx, cfg.rps) }()
	go func() { defer wg.Done(); s.churnLoop(runCtx, cfg.churn) }()
	samples := s.sampleLoop(runCtx, cfg.sample)
	wg.Wait()
	s.report(cfg, samples)
}

func (s *soaker) exec(ctx context.Context, sql string, args ...any) {
	s.t.Helper()
	if _, err := s.db.Exec(ctx, sql, args...); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
}

// seed creates the tenants: an owner, a team account of tier AcmeTier, a
// route to the demo role (the fake STS knows it) and an API key each.
func (s *soaker) seed(ctx context.Context, n int) {
	for i := range n {
		owner := fmt.Sprintf("5%07x-0000-4000-8000-%012x", i, i)
		acct := fmt.Sprintf("6%07x-0000-4000-8000-%012x", i, i)
		tn := &tenant{account: acct, region: s.regions[i%len(s.regions)], enabled: true}
		s.exec(ctx, `INSERT INTO basejump.accounts (id, primary_owner_user_id, name, personal_account) VALUES ($1, $2, $3, false)`, acct, owner, "soak "+strconv.Itoa(i))
		s.exec(ctx, `INSERT INTO basejump.account_user (user_id, account_id, account_role) VALUES ($1, $2, 'owner')`, owner, acct)
		s.exec(ctx, `INSERT INTO public.credit_accounts (account_id, tier) VALUES ($1, $2)`, acct, tier)
		s.exec(ctx, `INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id, region) VALUES ($1, $2, $3, $4)`,
			acct, stack.AcmeRoleARN, stack.AcmeExternalID, tn.region)
		tn.key = s.newKey(ctx, acct)
		s.tenants = append(s.tenants, tn)
	}
}

func (s *soaker) newKey(ctx context.Context, acct string) string {
	pk, sk := "pk_"+randAlnum(32), "sk_"+randAlnum(32)
	s.exec(ctx, `INSERT INTO public.api_keys (public_key, secret_key_hash, account_id, status) VALUES ($1, $2, $3, 'active')`,
		pk, apikey.Hash(stack.APIKeySecret, sk), acct)
	return pk + ":" + sk
}

// call sends one Converse through Envoy with key and returns the status.
func (s *soaker) call(ctx context.Context, key string) (int, error) {
	body := `{"messages":[{"role":"user","content":[{"text":"soak"}]}]}`
	path := "/model/" + strings.ReplaceAll(stack.DemoModel, ":", "%3A") + "/converse"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.st.EnvoyURL+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-api-key", key)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// load sends rps requests per second from a pool of workers, each for a
// random tenant that is not being changed.
func (s *soaker) load(ctx context.Context, rps int) {
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range max(4, min(32, rps/5)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				tn := s.tenants[randInt(len(s.tenants))]
				tn.mu.Lock()
				key, busy := tn.key, tn.busy
				tn.mu.Unlock()
				if busy {
					continue
				}
				s.sent.Add(1)
				code, err := s.call(ctx, key)
				switch {
				case err != nil:
					if ctx.Err() == nil {
						s.errs.Add(1)
					}
				case code < 300:
					s.ok2xx.Add(1)
				case code < 500:
					s.refused4xx.Add(1)
				default:
					s.failed5xx.Add(1)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			default: // all workers busy: the load is what the stack sustains
			}
		}
	}
}

// churnLoop applies one change at a time and measures how long it takes
// until a request through Envoy shows it.
func (s *soaker) churnLoop(ctx context.Context, pause time.Duration) {
	for i := 0; ctx.Err() == nil; i++ {
		tn := s.tenants[randInt(len(s.tenants))]
		tn.mu.Lock()
		tn.busy = true
		tn.mu.Unlock()
		s.change(ctx, tn, i)
		tn.mu.Lock()
		tn.busy = false
		tn.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

func (s *soaker) change(ctx context.Context, tn *tenant, i int) {
	var kind string
	var expect func() bool
	switch {
	case !tn.enabled:
		kind = "route enabled"
		s.exec(ctx, `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = true WHERE account_id = $1`, tn.account)
		tn.enabled = true
		expect = func() bool { return s.servedIn(ctx, tn, tn.region) }
	case i%4 == 0:
		kind = "route disabled"
		s.exec(ctx, `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = false WHERE account_id = $1`, tn.account)
		tn.enabled = false
		expect = func() bool { code, err := s.call(ctx, tn.key); return err == nil && code == http.StatusForbidden }
	case i%4 == 1:
		kind = "api key revoked"
		s.exec(ctx, `UPDATE public.api_keys SET status = 'revoked' WHERE public_key = $1`, strings.SplitN(tn.key, ":", 2)[0])
		old := tn.key
		expect = func() bool { code, err := s.call(ctx, old); return err == nil && code == http.StatusUnauthorized }
		defer func() { tn.mu.Lock(); tn.key = s.newKey(ctx, tn.account); tn.mu.Unlock() }()
	case i%4 == 2:
		kind = "route deleted+added"
		s.exec(ctx, `DELETE FROM tenantgate.enterprise_bedrock_routing WHERE account_id = $1`, tn.account)
		region := s.regions[randInt(len(s.regions))]
		s.exec(ctx, `INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id, region) VALUES ($1, $2, $3, $4)`,
			tn.account, stack.AcmeRoleARN, stack.AcmeExternalID, region)
		tn.region = region
		expect = func() bool { return s.servedIn(ctx, tn, region) }
	default:
		kind = "route region changed"
		region := tn.region
		for region == tn.region {
			region = s.regions[randInt(len(s.regions))]
		}
		s.exec(ctx, `UPDATE tenantgate.enterprise_bedrock_routing SET region = $2 WHERE account_id = $1`, tn.account, region)
		tn.region = region
		expect = func() bool { return s.servedIn(ctx, tn, region) }
	}
	start := time.Now()
	defer func() {
		if os.Getenv("TENANTGATE_SOAK_VERBOSE") != "" {
			fmt.Printf("soak: change %d %s of %s after %s\n", i, kind, tn.account, time.Since(start).Round(time.Millisecond))
		}
	}()
	for ctx.Err() == nil {
		if expect() {
			s.honourMu.Lock()
			s.honour[kind] = append(s.honour[kind], time.Since(start))
			s.honourMu.Unlock()
			return
		}
		if time.Since(start) > honourTimeout {
			s.honourMu.Lock()
			s.unhonour[kind]++
			s.honourMu.Unlock()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servedIn sends one request for tn and reports whether the fake Bedrock
// saw it in region, signed by tn's assumed role (the session name carries
// the account id).
func (s *soaker) servedIn(ctx context.Context, tn *tenant, region string) bool {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	n := len(s.st.Records())
	code, err := s.call(ctx, tn.key)
	if err != nil || code != http.StatusOK {
		return false
	}
	for _, r := range s.st.Records()[n:] {
		if strings.Contains(r.PrincipalARN, tn.account) {
			return r.Region == region
		}
	}
	return false
}

// sample is one reading of tenantgate's /metrics and Envoy's memory.
type sample struct {
	at                 time.Duration
	sent, ok, ref, bad int64
	rssMB, heapMB      float64
	goroutines         float64
	envoyMB            float64
}

func (s *soaker) sampleLoop(ctx context.Context, every time.Duration) []sample {
	start := time.Now()
	var out []sample
	take := func() {
		m := s.metrics()
		smp := sample{at: time.Since(start).Round(time.Second), sent: s.sent.Load(), ok: s.ok2xx.Load(), ref: s.refused4xx.Load(),
			bad:   s.failed5xx.Load() + s.errs.Load(),
			rssMB: m["process_resident_memory_bytes"] / 1e6, heapMB: m["go_memstats_heap_inuse_bytes"] / 1e6,
			goroutines: m["go_goroutines"], envoyMB: s.envoyAllocated() / 1e6}
		out = append(out, smp)
		fmt.Printf("soak: t=%-6s sent=%-7d 2xx=%-7d 4xx=%-6d 5xx/err=%-4d tenantgate rss=%.1fMB heap=%.1fMB goroutines=%.0f envoy=%.1fMB\n",
			smp.at, smp.sent, smp.ok, smp.ref, smp.bad, smp.rssMB, smp.heapMB, smp.goroutines, smp.envoyMB)
		// The fake's records live in this process: drop them between samples.
		s.recMu.Lock()
		s.st.ResetRecords()
		s.recMu.Unlock()
		runtime.GC()
	}
	take()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			take()
			return out
		case <-tick.C:
			take()
		}
	}
}

// metrics reads the unlabelled samples of tenantgate's /metrics.
func (s *soaker) metrics() map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + s.st.TenantgateHTTP + "/metrics")
	if err != nil {
		s.t.Errorf("metrics: %v", err)
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// envoyAllocated is Envoy's allocated heap (admin /memory).
func (s *soaker) envoyAllocated() float64 {
	resp, err := http.Get(s.st.EnvoyAdminURL + "/memory")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var m struct {
		Allocated string `json:"allocated"`
	}
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m.Allocated, 64)
	return f
}

func (s *soaker) report(cfg settings, samples []sample) {
	var steady []sample
	for _, smp := range samples {
		if smp.at >= cfg.warmup {
			steady = append(steady, smp)
		}
	}
	if len(steady) < 2 {
		steady = samples
	}
	first, last := steady[0], steady[len(steady)-1]
	span := func(f func(sample) float64) (lo, hi float64) {
		lo, hi = f(steady[0]), f(steady[0])
		for _, smp := range steady {
			lo, hi = min(lo, f(smp)), max(hi, f(smp))
		}
		return
	}
	rlo, rhi := span(func(x sample) float64 { return x.rssMB })
	glo, ghi := span(func(x sample) float64 { return x.goroutines })
	elapsed := samples[len(samples)-1].at
	fmt.Printf("\nsoak summary (%s; steady state from t=%s)\n", elapsed, first.at)
	fmt.Printf("  requests: %d sent (%.1f/s), %d 2xx, %d 4xx (changed tenants), %d 5xx or transport errors\n",
		last.sent, float64(last.sent)/elapsed.Seconds(), last.ok, last.ref, last.bad)
	fmt.Printf("  tenantgate RSS: %.1f MB -> %.1f MB (min %.1f, max %.1f)\n", first.rssMB, last.rssMB, rlo, rhi)
	fmt.Printf("  tenantgate goroutines: %.0f -> %.0f (min %.0f, max %.0f)\n", first.goroutines, last.goroutines, glo, ghi)
	fmt.Printf("  envoy allocated: %.1f MB -> %.1f MB\n", first.envoyMB, last.envoyMB)
	kinds := make([]string, 0, len(s.honour))
	for k := range s.honour {
		kinds = append(kinds, k)
	}
	for k := range s.unhonour {
		if _, ok := s.honour[k]; !ok {
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds)
	fmt.Printf("  changes honoured (time from COMMIT until a request through Envoy shows it):\n")
	for _, k := range kinds {
		ds := s.honour[k]
		slices.Sort(ds)
		var p50, mx time.Duration
		if len(ds) > 0 {
			p50, mx = ds[len(ds)/2], ds[len(ds)-1]
		}
		fmt.Printf("    %-22s n=%-4d median=%-8s max=%-8s not honoured within %s: %d\n", k, len(ds), p50.Round(time.Millisecond), mx.Round(time.Millisecond), honourTimeout, s.unhonour[k])
		if s.unhonour[k] > 0 {
			s.t.Errorf("%d %q changes not honoured within %s", s.unhonour[k], k, honourTimeout)
		}
	}
	if last.bad > 0 {
		s.t.Errorf("%d requests failed with 5xx or a transport error", last.bad)
	}
}
