package apikey

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/metrics"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

const (
	publicPrefix = "pk_"
	secretPrefix = "sk_"
	randLen      = 32
	// headerLen is len("pk_" + 32 + ":" + "sk_" + 32).
	headerLen = len(publicPrefix) + randLen + 1 + len(secretPrefix) + randLen

	// maxPending bounds the set of key ids waiting for a last_used_at flush.
	maxPending = 10000
	// flushTimeout bounds one TouchAPIKeys call.
	flushTimeout = 10 * time.Second
	// defaultTouchInterval is used when Options.TouchInterval is not positive.
	defaultTouchInterval = 10 * time.Second
)

// IsKey reports whether s has the exact shape of an API key (what Parse
// accepts). A bearer token of this shape is an API key, not a JWT.
func IsKey(s string) bool {
	_, _, err := Parse(s)
	return err == nil
}

// Parse splits an x-api-key header value "pk_<32 alnum>:sk_<32 alnum>" into
// its public and secret parts. Surrounding whitespace is ignored; anything
// else that does not match the format exactly returns ErrMalformed.
func Parse(header string) (publicKey, secretKey string, err error) {
	h := strings.TrimSpace(header)
	if len(h) != headerLen {
		return "", "", ErrMalformed
	}
	pk, sk, ok := strings.Cut(h, ":")
	if !ok || !validPart(pk, publicPrefix) || !validPart(sk, secretPrefix) {
		return "", "", ErrMalformed
	}
	return pk, sk, nil
}

func validPart(s, prefix string) bool {
	if len(s) != len(prefix)+randLen || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Hash returns the lowercase hex HMAC-SHA256 of secretKey (the full "sk_..."
// string) keyed with hmacSecret, as stored in api_keys.secret_key_hash.
func Hash(hmacSecret, secretKey string) string {
	m := hmac.New(sha256.New, []byte(hmacSecret))
	m.Write([]byte(secretKey))
	return hex.EncodeToString(m.Sum(nil))
}

// Store is the API key lookup the Authenticator needs.
type Store interface {
	// APIKeyByPublic returns the key with the given public key, or
	// tenant.ErrNotFound when there is none.
	APIKeyByPublic(ctx context.Context, publicKey string) (tenant.APIKey, error)
	// TouchAPIKeys sets last_used_at of the given keys.
	TouchAPIKeys(ctx context.Context, keyIDs []string, at time.Time) error
}

// Options are the optional dependencies of an Authenticator.
type Options struct {
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	Now           func() time.Time
	TouchInterval time.Duration
}

// Authenticator checks x-api-key credentials against the store and records
// their use.
type Authenticator struct {
	store    Store
	secret   string
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	results  *prometheus.CounterVec
	flushes  *prometheus.CounterVec

	mu      sync.Mutex
	pending map[string]struct{}
	// flushMu serialises flushes so a final flush never races a tick.
	flushMu sync.Mutex
}

// NewAuthenticator returns an Authenticator that hashes secrets with
// hmacSecret. Call Run to flush last_used_at updates.
func NewAuthenticator(store Store, hmacSecret string, opts Options) *Authenticator {
	a := &Authenticator{
		store:    store,
		secret:   hmacSecret,
		log:      opts.Logger,
		now:      opts.Now,
		interval: opts.TouchInterval,
		pending:  make(map[string]struct{}),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.interval <= 0 {
		a.interval = defaultTouchInterval
	}
	a.results = registerCounter(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_apikey_authentications_total",
		Help: "API key authentications by result (ok, malformed, invalid, revoked, expired, unavailable).",
	}, []string{"result"}))
	a.flushes = registerCounter(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_apikey_touch_flushes_total",
		Help: "Batched last_used_at flushes by result (ok, error).",
	}, []string{"result"}))
	return a
}

// registerCounter registers c (or reuses the equal collector already on
// reg); a registration conflict leaves c working but unexported.
func registerCounter(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	c, _ = metrics.Register(reg, c)
	return c
}

// Authenticate verifies an x-api-key header value. It returns the key row on
// success; ErrMalformed, ErrInvalid, ErrRevoked or ErrExpired when the
// credential is refused; any other (wrapped) error means the store is
// unavailable. The secret is compared in constant time and the key status is
// only revealed to a caller who holds the right secret.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (tenant.APIKey, error) {
	key, err := a.authenticate(ctx, header)
	a.results.WithLabelValues(resultLabel(err)).Inc()
	return key, err
}

func (a *Authenticator) authenticate(ctx context.Context, header string) (tenant.APIKey, error) {
	pk, sk, err := Parse(header)
	if err != nil {
		return tenant.APIKey{}, err
	}
	key, err := a.store.APIKeyByPublic(ctx, pk)
	if errors.Is(err, tenant.ErrNotFound) {
		// Same work as a real comparison so timing does not reveal whether
		// the public key exists.
		subtle.ConstantTimeCompare([]byte(Hash(a.secret, sk)), []byte(dummyHash))
		return tenant.APIKey{}, ErrInvalid
	}
	if err != nil {
		return tenant.APIKey{}, fmt.Errorf("api key lookup: %w", err)
	}
	got := Hash(a.secret, sk)
	want := strings.ToLower(key.SecretKeyHash)
	hashOK := subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	// A store returns the row it was asked for; a row for another public
	// key is refused rather than trusted.
	pkOK := key.PublicKey == "" || subtle.ConstantTimeCompare([]byte(key.PublicKey), []byte(pk)) == 1
	if !hashOK || !pkOK {
		return tenant.APIKey{}, ErrInvalid
	}
	switch key.Status {
	case tenant.KeyActive:
	case tenant.KeyRevoked:
		return tenant.APIKey{}, ErrRevoked
	case tenant.KeyExpired:
		return tenant.APIKey{}, ErrExpired
	default:
		return tenant.APIKey{}, ErrInvalid
	}
	if key.ExpiresAt != nil && !a.now().Before(*key.ExpiresAt) {
		return tenant.APIKey{}, ErrExpired
	}
	a.touch(key.KeyID)
	return key, nil
}

// dummyHash has the shape of a real hash; it is compared against when the
// public key is unknown.
var dummyHash = strings.Repeat("0", sha256.Size*2)

func resultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrRevoked):
		return "revoked"
	case errors.Is(err, ErrExpired):
		return "expired"
	default:
		return "unavailable"
	}
}

// touch records a use of keyID for the next flush. It never blocks on the
// store; when the pending set is full the use is dropped (last_used_at is
// advisory).
func (a *Authenticator) touch(keyID string) {
	if keyID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pending[keyID]; ok {
		return
	}
	if len(a.pending) >= maxPending {
		return
	}
	a.pending[keyID] = struct{}{}
}

// Run flushes pending last_used_at updates every TouchInterval until ctx
// ends, then flushes once more.
func (a *Authenticator) Run(ctx context.Context) {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			a.flush(fctx)
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, flushTimeout)
			a.flush(fctx)
			cancel()
		}
	}
}

// flush writes every pending key id in one TouchAPIKeys call. On failure the
// ids are put back (bounded) and retried on the next tick.
func (a *Authenticator) flush(ctx context.Context) {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	if len(a.pending) == 0 {
		a.mu.Unlock()
		return
	}
	ids := make([]string, 0, len(a.pending))
	for id := range a.pending {
		ids = append(ids, id)
	}
	a.pending = make(map[string]struct{})
	a.mu.Unlock()
	slices.Sort(ids)

	if err := a.store.TouchAPIKeys(ctx, ids, a.now()); err != nil {
		a.flushes.WithLabelValues("error").Inc()
		a.log.WarnContext(ctx, "api key last_used_at update failed; retrying next tick",
			slog.Int("keys", len(ids)), slog.String("error", err.Error()))
		a.mu.Lock()
		for _, id := range ids {
			if len(a.pending) >= maxPending {
				break
			}
			a.pending[id] = struct{}{}
		}
		a.mu.Unlock()
		return
	}
	a.flushes.WithLabelValues("ok").Inc()
}
