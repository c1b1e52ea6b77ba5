package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// The operator's writes to tenantgate.enterprise_bedrock_routing (tenantgate
// routes). Callers validate rows first (validate.Route and the served
// regions); the table's CHECK constraints are the last line. Every write
// fires the invalidation trigger, so running instances honour it within the
// LISTEN/NOTIFY bound.

// AllRoutes returns every route, enabled or not, ordered by account id.
func (s *Store) AllRoutes(ctx context.Context) ([]tenant.Route, error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+routeColumns+` FROM tenantgate.enterprise_bedrock_routing ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: routes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenant.Route, error) { return scanRoute(row) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: routes: %w", err)
	}
	return out, nil
}

// PutRoute inserts or replaces the route of r.AccountID (an empty Region is
// stored as NULL: the configured default region) and returns the stored row.
// An account that does not exist is tenant.ErrNotFound.
func (s *Store) PutRoute(ctx context.Context, r tenant.Route) (tenant.Route, error) {
	if !validate.UUID(r.AccountID) {
		return tenant.Route{}, tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM basejump.accounts WHERE id = $1::uuid)`, r.AccountID).Scan(&exists); err != nil {
		return tenant.Route{}, fmt.Errorf("pgstore: put route: %w", err)
	}
	if !exists {
		return tenant.Route{}, tenant.ErrNotFound
	}
	out, err := scanRoute(s.pool.QueryRow(ctx, `INSERT INTO tenantgate.enterprise_bedrock_routing
			(account_id, bedrock_role_arn, bedrock_external_id, region, enabled)
		VALUES ($1::uuid, $2, $3, nullif($4, ''), $5)
		ON CONFLICT (account_id) DO UPDATE SET bedrock_role_arn = excluded.bedrock_role_arn,
			bedrock_external_id = excluded.bedrock_external_id, region = excluded.region, enabled = excluded.enabled
		RETURNING `+routeColumns, r.AccountID, r.RoleARN, r.ExternalID, r.Region, r.Enabled))
	if err != nil {
		// The error names the constraint, never the values.
		return tenant.Route{}, fmt.Errorf("pgstore: put route: %w", err)
	}
	return out, nil
}

// SetRouteEnabled enables or disables the route of accountID;
// tenant.ErrNotFound when it has none.
func (s *Store) SetRouteEnabled(ctx context.Context, accountID string, enabled bool) (tenant.Route, error) {
	if !validate.UUID(accountID) {
		return tenant.Route{}, tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	r, err := scanRoute(s.pool.QueryRow(ctx, `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = $2
		WHERE account_id = $1::uuid RETURNING `+routeColumns, accountID, enabled))
	if err != nil {
		return tenant.Route{}, notFound("set route enabled", err)
	}
	return r, nil
}

// DeleteRoute removes the route of accountID; tenant.ErrNotFound when it has
// none.
func (s *Store) DeleteRoute(ctx context.Context, accountID string) error {
	if !validate.UUID(accountID) {
		return tenant.ErrNotFound
	}
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM tenantgate.enterprise_bedrock_routing WHERE account_id = $1::uuid`, accountID)
	if err != nil {
		return fmt.Errorf("pgstore: delete route: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return tenant.ErrNotFound
	}
	return nil
}
