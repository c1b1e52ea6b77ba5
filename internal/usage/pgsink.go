package usage

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGSink writes records into tenantgate.usage_records, one transaction per
// batch. A request id already stored is skipped (ON CONFLICT DO NOTHING),
// and with credits on, only a newly stored record debits
// public.credit_accounts.balance, in the same transaction.
type PGSink struct {
	pool *pgxpool.Pool
	// Credits: debit each new record's Cost.
	credits bool
}

// NewPGSink returns a sink on pool; credits enables debiting.
func NewPGSink(pool *pgxpool.Pool, credits bool) *PGSink {
	return &PGSink{pool: pool, credits: credits}
}

const insertRecord = `INSERT INTO tenantgate.usage_records
	(request_id, occurred_at, account_id, tier, user_id, principal_kind, api_key_id, model, resolved_model,
	 operation, region, identity_kind, status, complete, error_type, input_tokens, output_tokens,
	 cache_read_tokens, cache_write_tokens, final_usage, latency_ms, ttfb_ms, cost)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
	ON CONFLICT (request_id) DO NOTHING`

// debit lowers the balance of an account whose id is a UUID (others have
// no credit_accounts row); a NULL balance stays NULL (no credit system for
// that account).
const debit = `UPDATE public.credit_accounts SET balance = balance - $2::numeric
	WHERE account_id = (CASE WHEN $1 ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN $1::uuid END)
	AND balance IS NOT NULL`

// Write stores recs in one transaction.
func (s *PGSink) Write(ctx context.Context, recs []Record) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, r := range recs {
			b.Queue(insertRecord, r.RequestID, r.Time, r.AccountID, r.Tier, r.UserID, r.PrincipalKind, r.APIKeyID, r.Model, r.ResolvedModel,
				r.Operation, r.Region, r.IdentityKind, r.Status, r.Complete, r.ErrorType, r.Input, r.Output,
				r.CacheRead, r.CacheWrite, r.FinalUsage, r.LatencyMS, r.TTFBMS, r.Cost)
		}
		res := tx.SendBatch(ctx, b)
		inserted := make([]bool, len(recs))
		for i := range recs {
			tag, err := res.Exec()
			if err != nil {
				_ = res.Close()
				return fmt.Errorf("usage: insert record: %w", err)
			}
			inserted[i] = tag.RowsAffected() == 1
		}
		if err := res.Close(); err != nil {
			return fmt.Errorf("usage: insert records: %w", err)
		}
		if !s.credits {
			return nil
		}
		db := &pgx.Batch{}
		for i, r := range recs {
			if inserted[i] && r.Cost != nil && *r.Cost != 0 {
				db.Queue(debit, r.AccountID, *r.Cost)
			}
		}
		if db.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, db).Close(); err != nil {
			return fmt.Errorf("usage: debit credits: %w", err)
		}
		return nil
	})
}
