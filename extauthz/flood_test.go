package extauthz

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
	"github.com/tenantgate/tenantgate/internal/store/cache"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// countingStore is a store with one API key (for acctTeam) that
// counts the API key lookups it answers and takes a little time for each,
// like a database. Lookups the flood does not make are not implemented.
type countingStore struct {
	cache.Source // nil: an unexpected lookup panics
	key          tenant.APIKey
	delay        time.Duration
	unknown      atomic.Int64 // lookups of keys that do not exist
	known        atomic.Int64
}

func (s *countingStore) APIKeyByPublic(ctx context.Context, pk string) (tenant.APIKey, error) {
	time.Sleep(s.delay)
	if pk == s.key.PublicKey {
		s.known.Add(1)
		return s.key, nil
	}
	s.unknown.Add(1)
	return tenant.APIKey{}, tenant.ErrNotFound
}

func (s *countingStore) Account(ctx context.Context, id string) (tenant.Account, error) {
	if a, ok := accounts[id]; ok {
		return a, nil
	}
	return tenant.Account{}, tenant.ErrNotFound
}

func (s *countingStore) Plan(ctx context.Context, id string) (tenant.Plan, error) {
	return (&fakeDir{}).Plan(ctx, id)
}

func (s *countingStore) Close() {}

func randomKey() string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "pk_" + string(b[:32]) + ":sk_" + string(b[32:])
}

// TestAPIKeyFloodBoundsStoreQueries floods ext_authz with random well-formed
// API keys from several goroutines while a valid caller keeps calling. The
// store must see at most burst + rate × duration lookups of unknown keys,
// and the valid caller must get every answer allowed, although its cached
// entry expires many times during the flood.
func TestAPIKeyFloodBoundsStoreQueries(t *testing.T) {
	const (
		rate     = 50.0
		burst    = 100
		flooders = 8
		flood    = 1500 * time.Millisecond
	)
	cfg := testConfig(t)
	validKey := randomKey()
	pk, sk, err := apikey.Parse(validKey)
	if err != nil {
		t.Fatal(err)
	}
	src := &countingStore{
		key:   tenant.APIKey{KeyID: "k1", PublicKey: pk, AccountID: acctTeam, Status: tenant.KeyActive, SecretKeyHash: apikey.Hash(cfg.Auth.APIKeys.Secret, sk)},
		delay: time.Millisecond,
	}
	reg := prometheus.NewRegistry()
	m, err := cache.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	store := cache.New(src, cache.Options{
		TTL: 50 * time.Millisecond, NegativeTTL: 30 * time.Second,
		KeyLookupRate: rate, KeyLookupBurst: burst, Metrics: m,
	})
	keys := apikey.NewAuthenticator(store, cfg.Auth.APIKeys.Secret, apikey.Options{})
	srv, err := New(Options{Auth: cfg.Auth, Plans: cfg.Plans, Service: cfg.Service, Registerer: reg}, newFakeVerifier(), keys, store)
	if err != nil {
		t.Fatal(err)
	}
	check := func(key string) (verdict, error) {
		resp, err := srv.Check(context.Background(), envoyRequest("POST", pathHaiku, map[string]string{"x-api-key": key}, ""))
		if err != nil {
			return verdict{}, err
		}
		return decode(t, resp), nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), flood)
	defer cancel()
	var (
		wg           sync.WaitGroup
		floodSent    atomic.Int64
		mu           sync.Mutex
		floodAnswers = map[string]int{}
		validOK      int
		validFailed  []string
	)
	start := time.Now()
	for i := 0; i < flooders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				v, err := check(randomKey())
				floodSent.Add(1)
				a := fmt.Sprintf("%d %s", v.status, v.code)
				if err != nil {
					a = err.Error()
				}
				mu.Lock()
				floodAnswers[a]++
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			v, err := check(validKey)
			mu.Lock()
			if err == nil && v.status == 200 && v.id.AccountID == acctTeam {
				validOK++
			} else {
				validFailed = append(validFailed, fmt.Sprintf("%d %s %v", v.status, v.code, err))
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)

	bound := float64(burst) + rate*elapsed.Seconds()
	unknown := src.unknown.Load()
	t.Logf("%v: %d flood requests (%v), %d unknown-key lookups (bound %.0f), %d known-key lookups, valid caller %d ok",
		elapsed, floodSent.Load(), floodAnswers, unknown, bound, src.known.Load(), validOK)
	if float64(unknown) > bound {
		t.Errorf("store answered %d lookups of unknown keys in %v, want at most burst + rate × duration = %.0f", unknown, elapsed, bound)
	}
	if float64(floodSent.Load()) < 2*bound {
		t.Fatalf("only %d flood requests: the flood did not exceed the limit, the test proves nothing", floodSent.Load())
	}
	for a := range floodAnswers {
		if a != "401 "+string(apierror.InvalidAPIKey) && a != "503 "+string(apierror.Unavailable) {
			t.Errorf("flood answered %q (%d times), want 401 invalid_api_key or 503 unavailable", a, floodAnswers[a])
		}
	}
	if len(validFailed) > 0 {
		t.Errorf("valid caller refused %d times during the flood (%d ok): %v", len(validFailed), validOK, validFailed[:min(5, len(validFailed))])
	}
	if validOK < 5 {
		t.Errorf("valid caller got only %d answers during the flood", validOK)
	}
	if src.known.Load() < 2 {
		t.Errorf("the valid key was looked up %d times: its cached entry never expired during the flood", src.known.Load())
	}
	if got := metricstest.Value(t, reg, "tenantgate_store_lookups_limited_total", "kind", "api_key"); got == 0 {
		t.Error("no limited lookups counted")
	}
}
