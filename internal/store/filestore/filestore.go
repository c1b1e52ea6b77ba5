// Package filestore owns the YAML tenants file store: accounts, members,
// plans, API keys and Bedrock routes read from a file (re-read when it
// changes) or from the embedded demo file, so tenantgate runs without a
// database.
package filestore

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// DefaultTenants is the embedded demo tenants file, served only when the
// store is explicitly the demo (`--demo`, store.demo).
//
//go:embed default-tenants.yaml
var DefaultTenants []byte

// Demo values of DefaultTenants. They are public and for demos only.
const (
	DemoAliceUserID      = "11111111-1111-4111-8111-111111111111"
	DemoBobUserID        = "22222222-2222-4222-8222-222222222222"
	DemoCarolUserID      = "33333333-3333-4333-8333-333333333333"
	DemoAcmeAccountID    = "a0000000-0000-4000-8000-000000000001"
	DemoAliceAccountID   = "a0000000-0000-4000-8000-000000000011"
	DemoBobAccountID     = "a0000000-0000-4000-8000-000000000022"
	DemoCarolAccountID   = "a0000000-0000-4000-8000-000000000033"
	DemoAcmeRoleARN      = "arn:aws:iam::111122223333:role/AcmeBedrockAccess"
	DemoAcmeExternalID   = "acme-external-id-7f3c"
	DemoAcmeRegion       = "eu-west-1"
	DemoAPIKeyID         = "c0000000-0000-4000-8000-000000000001"
	DemoAPIKeyPublic     = "pk_demoAcmePublicKey000000000000000"
	DemoAPIKeySecret     = "sk_demoAcmeSecretKey000000000000000"
	DemoAPIKeyHMACSecret = "demo-api-key-secret-change-me-0123456789"
)

// Options configures Open.
type Options struct {
	// PollInterval is how often the file's size and mtime are checked
	// (default 1s).
	PollInterval time.Duration
	// OnReload is called after a changed file was loaded successfully.
	OnReload func()
	Logger   *slog.Logger
}

// Store serves lookups from the current tenants snapshot. It is safe for
// concurrent use.
type Store struct {
	snap atomic.Pointer[snapshot]

	mu       sync.Mutex
	lastUsed map[string]time.Time // key id -> last_used_at written by TouchAPIKeys

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Load returns a Store over data that never reloads.
func Load(data []byte) (*Store, error) {
	_, snap, err := parse(data, time.Now())
	if err != nil {
		return nil, err
	}
	s := &Store{lastUsed: map[string]time.Time{}}
	s.snap.Store(snap)
	return s, nil
}

// Open loads path and re-reads it whenever its size or modification time
// changes. A changed file that fails validation is logged and ignored; the
// previous content keeps being served.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	s, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	go s.watch(ctx, path, fileVersion{st.ModTime(), st.Size()}, opts)
	return s, nil
}

type fileVersion struct {
	mtime time.Time
	size  int64
}

func (s *Store) watch(ctx context.Context, path string, last fileVersion, opts Options) {
	defer close(s.done)
	log := opts.Logger.With("path", path)
	t := time.NewTicker(opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-t.C:
		}
		st, err := os.Stat(path)
		if err != nil {
			log.WarnContext(ctx, "tenants file unreadable; keeping the loaded tenants", "error", err)
			continue
		}
		v := fileVersion{st.ModTime(), st.Size()}
		if v == last {
			continue
		}
		last = v
		data, err := os.ReadFile(path)
		if err != nil {
			log.WarnContext(ctx, "tenants file unreadable; keeping the loaded tenants", "error", err)
			continue
		}
		_, snap, err := parse(data, time.Now())
		if err != nil {
			log.ErrorContext(ctx, "tenants file changed but is invalid; keeping the loaded tenants", "error", err)
			continue
		}
		s.snap.Store(snap)
		log.InfoContext(ctx, "tenants file reloaded", "accounts", len(snap.accounts))
		if opts.OnReload != nil {
			opts.OnReload()
		}
	}
}

// PersonalAccount returns userID's personal account.
func (s *Store) PersonalAccount(_ context.Context, userID string) (tenant.Account, error) {
	u, ok := validate.NormalizeUUID(userID)
	if !ok {
		return tenant.Account{}, tenant.ErrNotFound
	}
	snap := s.snap.Load()
	id, ok := snap.personal[u]
	if !ok {
		return tenant.Account{}, tenant.ErrNotFound
	}
	return snap.accounts[id], nil
}

// Account returns the account accountID.
func (s *Store) Account(_ context.Context, accountID string) (tenant.Account, error) {
	id, ok := validate.NormalizeUUID(accountID)
	if !ok {
		return tenant.Account{}, tenant.ErrNotFound
	}
	a, ok := s.snap.Load().accounts[id]
	if !ok {
		return tenant.Account{}, tenant.ErrNotFound
	}
	return a, nil
}

// Membership returns userID's role in accountID.
func (s *Store) Membership(_ context.Context, accountID, userID string) (tenant.Role, error) {
	a, ok1 := validate.NormalizeUUID(accountID)
	u, ok2 := validate.NormalizeUUID(userID)
	if !ok1 || !ok2 {
		return "", tenant.ErrNotFound
	}
	r, ok := s.snap.Load().members[memberKey(a, u)]
	if !ok {
		return "", tenant.ErrNotFound
	}
	return r, nil
}

// Plan returns the plan of accountID; an account without a tier has
// tenant.NoTier.
func (s *Store) Plan(_ context.Context, accountID string) (tenant.Plan, error) {
	id, ok := validate.NormalizeUUID(accountID)
	if !ok {
		return tenant.Plan{Tier: tenant.NoTier}, nil
	}
	p, ok := s.snap.Load().plans[id]
	if !ok {
		return tenant.Plan{Tier: tenant.NoTier}, nil
	}
	if p.Balance != nil {
		b := *p.Balance
		p.Balance = &b
	}
	return p, nil
}

// APIKeyByPublic returns the API key whose public part is publicKey.
func (s *Store) APIKeyByPublic(_ context.Context, publicKey string) (tenant.APIKey, error) {
	k, ok := s.snap.Load().keys[publicKey]
	if !ok {
		return tenant.APIKey{}, tenant.ErrNotFound
	}
	if k.ExpiresAt != nil {
		t := *k.ExpiresAt
		k.ExpiresAt = &t
	}
	s.mu.Lock()
	if t, ok := s.lastUsed[k.KeyID]; ok {
		k.LastUsedAt = &t
	}
	s.mu.Unlock()
	return k, nil
}

// TouchAPIKeys records last use in memory (the file is never written).
func (s *Store) TouchAPIKeys(_ context.Context, keyIDs []string, at time.Time) error {
	snap := s.snap.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range keyIDs {
		kid, ok := validate.NormalizeUUID(id)
		if !ok || !snap.keyIDs[kid] {
			continue
		}
		if prev, ok := s.lastUsed[kid]; !ok || prev.Before(at) {
			s.lastUsed[kid] = at
		}
	}
	return nil
}

// Route returns the routing row of accountID, enabled or not.
func (s *Store) Route(_ context.Context, accountID string) (tenant.Route, error) {
	id, ok := validate.NormalizeUUID(accountID)
	if !ok {
		return tenant.Route{}, tenant.ErrNotFound
	}
	r, ok := s.snap.Load().routes[id]
	if !ok {
		return tenant.Route{}, tenant.ErrNotFound
	}
	return r, nil
}

// Routes returns every enabled route, ordered by account id.
func (s *Store) Routes(context.Context) ([]tenant.Route, error) {
	return s.snap.Load().sortedRoutes(), nil
}

// Ping always succeeds: the tenants are in memory.
func (s *Store) Ping(context.Context) error { return nil }

// Close stops watching the file.
func (s *Store) Close() {
	s.once.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
		}
	})
}

// Tiers returns every distinct plan tier of the loaded accounts, sorted,
// with tenant.NoTier for accounts without one.
func (s *Store) Tiers(context.Context) ([]string, error) {
	snap := s.snap.Load()
	seen := map[string]bool{}
	for id := range snap.accounts {
		tier := tenant.NoTier
		if p, ok := snap.plans[id]; ok && p.Tier != "" {
			tier = p.Tier
		}
		seen[tier] = true
	}
	return slices.Sorted(maps.Keys(seen)), nil
}
