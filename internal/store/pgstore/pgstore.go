// Package pgstore owns the PostgreSQL store: lookups of basejump accounts and
// memberships, credit_accounts plans, api_keys and enterprise_bedrock_routing
// over a pgx pool with a per-query timeout; the LISTEN connection that turns
// tenantgate_invalidate notifications into cache invalidations; and applying
// the embedded migrations.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// Options configures Open.
type Options struct {
	MaxConns int32
	// QueryTimeout bounds each query (default 2s).
	QueryTimeout time.Duration
	Logger       *slog.Logger
}

// Store reads tenants from PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	log     *slog.Logger
}

// maxPublicKeyLen bounds API key lookups; longer input cannot be a key.
const maxPublicKeyLen = 256

// Open creates the pool and checks that the database answers. The URL is
// never included in errors or logs (it may carry a password).
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.New("pgstore: database URL is not a valid PostgreSQL connection string")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "tenantgate"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: create pool: %w", err)
	}
	s := &Store{pool: pool, timeout: opts.QueryTimeout, log: opts.Logger}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) queryCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Ping checks that a connection can run a query.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("pgstore: ping: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

const accountColumns = `id::text, primary_owner_user_id::text, personal_account, coalesce(name, ''), coalesce(slug, '')`

func scanAccount(row pgx.Row) (tenant.Account, error) {
	var a tenant.Account
	err := row.Scan(&a.ID, &a.PrimaryOwnerUserID, &a.Personal, &a.Name, &a.Slug)
	return a, err
}

// notFound maps pgx.ErrNoRows to tenant.ErrNotFound and wraps the rest.
func notFound(what string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return tenant.ErrNotFound
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

// PersonalAccount returns userID's personal account (the oldest, should a
// user have several).
func (s *Store) PersonalAccount(ctx context.Context, userID string) (tenant.Account, error) {
	if !validate.UUID(userID) {
		return tenant.Account{}, tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM basejump.accounts
		WHERE primary_owner_user_id = $1::uuid AND personal_account
		ORDER BY created_at NULLS LAST, id LIMIT 1`, userID))
	if err != nil {
		return tenant.Account{}, notFound("personal account", err)
	}
	return a, nil
}

// Account returns the account accountID.
func (s *Store) Account(ctx context.Context, accountID string) (tenant.Account, error) {
	if !validate.UUID(accountID) {
		return tenant.Account{}, tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM basejump.accounts WHERE id = $1::uuid`, accountID))
	if err != nil {
		return tenant.Account{}, notFound("account", err)
	}
	return a, nil
}

// Membership returns userID's role in accountID; tenant.ErrNotFound when the
// user is not a member.
func (s *Store) Membership(ctx context.Context, accountID, userID string) (tenant.Role, error) {
	if !validate.UUID(accountID) || !validate.UUID(userID) {
		return "", tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	var role string
	err := s.pool.QueryRow(ctx, `SELECT account_role::text FROM basejump.account_user
		WHERE account_id = $1::uuid AND user_id = $2::uuid`, accountID, userID).Scan(&role)
	if err != nil {
		return "", notFound("membership", err)
	}
	return tenant.Role(role), nil
}

// Plan returns the credit_accounts row of accountID; an account without a
// row (or with an empty tier) has tenant.NoTier.
func (s *Store) Plan(ctx context.Context, accountID string) (tenant.Plan, error) {
	none := tenant.Plan{Tier: tenant.NoTier}
	if !validate.UUID(accountID) {
		return none, nil
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	var p tenant.Plan
	err := s.pool.QueryRow(ctx, `SELECT coalesce(nullif(tier::text, ''), 'none'), coalesce(trial_status::text, ''), balance::float8
		FROM public.credit_accounts WHERE account_id = $1::uuid`, accountID).Scan(&p.Tier, &p.TrialStatus, &p.Balance)
	if errors.Is(err, pgx.ErrNoRows) {
		return none, nil
	}
	if err != nil {
		return tenant.Plan{}, fmt.Errorf("pgstore: plan: %w", err)
	}
	return p, nil
}

// APIKeyByPublic returns the api_keys row whose public_key is publicKey.
func (s *Store) APIKeyByPublic(ctx context.Context, publicKey string) (tenant.APIKey, error) {
	if !validate.LookupText(publicKey, maxPublicKeyLen) {
		return tenant.APIKey{}, tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	var k tenant.APIKey
	err := s.pool.QueryRow(ctx, `SELECT key_id::text, public_key, secret_key_hash, coalesce(account_id::text, ''),
			coalesce(title, ''), status::text, expires_at, last_used_at
		FROM public.api_keys WHERE public_key = $1`, publicKey).
		Scan(&k.KeyID, &k.PublicKey, &k.SecretKeyHash, &k.AccountID, &k.Title, &k.Status, &k.ExpiresAt, &k.LastUsedAt)
	if err != nil {
		return tenant.APIKey{}, notFound("api key", err)
	}
	return k, nil
}

// TouchAPIKeys sets last_used_at = at on the given keys in one UPDATE; it
// never moves last_used_at backwards. Malformed ids are skipped.
func (s *Store) TouchAPIKeys(ctx context.Context, keyIDs []string, at time.Time) error {
	ids := make([]string, 0, len(keyIDs))
	for _, id := range keyIDs {
		if validate.UUID(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE public.api_keys SET last_used_at = $2
		WHERE key_id = ANY($1::uuid[]) AND (last_used_at IS NULL OR last_used_at < $2)`, ids, at)
	if err != nil {
		return fmt.Errorf("pgstore: touch api keys: %w", err)
	}
	return nil
}

const routeColumns = `account_id::text, bedrock_role_arn, bedrock_external_id, coalesce(region, ''), enabled, updated_at, inference_profiles`

func scanRoute(row pgx.Row) (tenant.Route, error) {
	var r tenant.Route
	err := row.Scan(&r.AccountID, &r.RoleARN, &r.ExternalID, &r.Region, &r.Enabled, &r.UpdatedAt, &r.InferenceProfiles)
	return r, err
}

// Route returns the routing row of accountID, enabled or not.
func (s *Store) Route(ctx context.Context, accountID string) (tenant.Route, error) {
	if !validate.UUID(accountID) {
		return tenant.Route{}, tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	r, err := scanRoute(s.pool.QueryRow(ctx, `SELECT `+routeColumns+` FROM tenantgate.enterprise_bedrock_routing WHERE account_id = $1::uuid`, accountID))
	if err != nil {
		return tenant.Route{}, notFound("route", err)
	}
	return r, nil
}

// Routes returns every enabled route ordered by account id.
func (s *Store) Routes(ctx context.Context) ([]tenant.Route, error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+routeColumns+` FROM tenantgate.enterprise_bedrock_routing WHERE enabled ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: routes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenant.Route, error) { return scanRoute(row) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: routes: %w", err)
	}
	return out, nil
}

// Tiers returns every distinct plan tier in public.credit_accounts, sorted,
// with tenant.NoTier for empty tiers and for accounts without a row. It is
// for operator checks (check-config), not for requests.
func (s *Store) Tiers(ctx context.Context) ([]string, error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT coalesce(nullif(tier::text, ''), $1) FROM public.credit_accounts
		UNION
		SELECT $1 WHERE EXISTS (SELECT 1 FROM basejump.accounts a
			WHERE NOT EXISTS (SELECT 1 FROM public.credit_accounts c WHERE c.account_id = a.id))
		ORDER BY 1`, tenant.NoTier)
	if err != nil {
		return nil, fmt.Errorf("pgstore: tiers: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: tiers: %w", err)
	}
	slices.Sort(out) // independent of the database's collation
	return out, nil
}
