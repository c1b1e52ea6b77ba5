package store

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/store/cache"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
	"github.com/tenantgate/tenantgate/internal/store/pgstore"
	"github.com/tenantgate/tenantgate/internal/tenant"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

func randomPublicKey() string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "pk_" + string(b)
}

// Open applies store.api_key_lookup_rate/burst: unknown keys over the burst
// are refused without a lookup; the key that exists is not.
func TestOpenLimitsUnknownAPIKeyLookups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(path, filestore.DefaultTenants, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := storeConfig()
	cfg.TenantsFile = path
	cfg.APIKeyLookupRate, cfg.APIKeyLookupBurst = 1, 2
	reg := prometheus.NewRegistry()
	s, err := Open(context.Background(), cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic); err != nil {
		t.Fatal(err)
	}
	var limited int
	for i := 0; i < 5; i++ {
		_, err := s.APIKeyByPublic(ctx, randomPublicKey())
		switch {
		case errors.Is(err, cache.ErrLimited):
			limited++
		case !errors.Is(err, tenant.ErrNotFound):
			t.Fatalf("unknown key: %v", err)
		}
	}
	// The burst of 2 went to the demo key and one unknown key.
	if limited != 4 {
		t.Fatalf("%d of 5 unknown-key lookups limited, want 4", limited)
	}
	s.(*cache.Cache).Flush()
	if _, err := s.APIKeyByPublic(ctx, filestore.DemoAPIKeyPublic); err != nil {
		t.Fatalf("known key after a flush: %v", err)
	}
}

// countingSource counts API key lookups that reach PostgreSQL.
type countingSource struct {
	cache.Source
	knownPK        string
	known, unknown atomic.Int64
}

func (s *countingSource) APIKeyByPublic(ctx context.Context, pk string) (tenant.APIKey, error) {
	if pk == s.knownPK {
		s.known.Add(1)
	} else {
		s.unknown.Add(1)
	}
	return s.Source.APIKeyByPublic(ctx, pk)
}

// TestPostgresAPIKeyFlood floods real PostgreSQL-backed API key
// authentication with random well-formed keys: the database answers at most
// burst + rate × duration of them while the valid key keeps authenticating,
// and a key created after its "not found" was cached works as soon as its
// NOTIFY arrives.
func TestPostgresAPIKeyFlood(t *testing.T) {
	url := testpg.Start(t)
	ctx := context.Background()
	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatal(err)
	}
	exec(t, url, seed)
	valid := filestore.DemoAPIKeyPublic + ":" + filestore.DemoAPIKeySecret

	t.Run("flood bounded, valid key answered", func(t *testing.T) {
		const (
			rate, burst = 20.0, 20
			flooders    = 6
			flood       = time.Second
		)
		pg, err := pgstore.Open(ctx, url, pgstore.Options{MaxConns: 4, QueryTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		src := &countingSource{Source: pg, knownPK: filestore.DemoAPIKeyPublic}
		c := cache.New(src, cache.Options{TTL: 50 * time.Millisecond, NegativeTTL: time.Minute, KeyLookupRate: rate, KeyLookupBurst: burst})
		defer c.Close()
		auth := apikey.NewAuthenticator(c, filestore.DemoAPIKeyHMACSecret, apikey.Options{})

		fctx, cancel := context.WithTimeout(ctx, flood)
		defer cancel()
		var (
			wg                sync.WaitGroup
			sent, limited     atomic.Int64
			validOK           atomic.Int64
			mu                sync.Mutex
			validErrs, others []error
		)
		start := time.Now()
		for i := 0; i < flooders; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for fctx.Err() == nil {
					_, err := auth.Authenticate(ctx, randomPublicKey()+":"+filestore.DemoAPIKeySecret)
					sent.Add(1)
					switch {
					case errors.Is(err, cache.ErrLimited):
						limited.Add(1)
					case !errors.Is(err, apikey.ErrInvalid):
						mu.Lock()
						others = append(others, err)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fctx.Err() == nil {
				if _, err := auth.Authenticate(ctx, valid); err != nil {
					mu.Lock()
					validErrs = append(validErrs, err)
					mu.Unlock()
				} else {
					validOK.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		wg.Wait()
		elapsed := time.Since(start)
		bound := burst + rate*elapsed.Seconds()
		t.Logf("%v: %d random keys sent, %d limited, %d reached PostgreSQL (bound %.0f); valid key %d ok, %d lookups",
			elapsed, sent.Load(), limited.Load(), src.unknown.Load(), bound, validOK.Load(), src.known.Load())
		if float64(src.unknown.Load()) > bound {
			t.Errorf("PostgreSQL answered %d unknown-key lookups in %v, want at most %.0f", src.unknown.Load(), elapsed, bound)
		}
		if float64(sent.Load()) < 2*bound {
			t.Fatalf("only %d random keys sent: the flood never exceeded the limit", sent.Load())
		}
		if len(others) > 0 {
			t.Errorf("random keys answered other than invalid or limited: %v", others[0])
		}
		if len(validErrs) > 0 || validOK.Load() < 5 {
			t.Errorf("valid key: %d ok, %d refused (first: %v)", validOK.Load(), len(validErrs), errors.Join(validErrs...))
		}
		if src.known.Load() < 2 {
			t.Errorf("valid key looked up %d times: its entry never expired during the flood", src.known.Load())
		}
	})

	t.Run("created key clears its not-found entry", func(t *testing.T) {
		cfg := storeConfig() // negative TTL one minute
		cfg.DatabaseURL = url
		cfg.APIKeyLookupRate, cfg.APIKeyLookupBurst = 50, 100
		s, err := Open(ctx, cfg, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		pk := randomPublicKey()
		if _, err := s.APIKeyByPublic(ctx, pk); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("before insert: %v", err)
		}
		exec(t, url, `INSERT INTO public.api_keys (key_id, public_key, secret_key_hash, account_id) VALUES
			('c0000000-0000-4000-8000-0000000000f1', '`+pk+`', '`+apikey.Hash("x", "y")+`', '`+acme+`')`)
		d := waitFor(t, time.Second, "created key", func() bool {
			k, err := s.APIKeyByPublic(ctx, pk)
			return err == nil && k.PublicKey == pk
		})
		t.Logf("created key visible after %v (negative TTL %v)", d, cfg.NegativeCacheTTL.D())
	})
}
