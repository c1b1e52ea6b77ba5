package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/migrations"
)

// migrationLock is the advisory lock key serialising concurrent migrators.
const migrationLock int64 = 0x74656e616e7467 // "tenantg"

// Migrate applies the embedded migrations: the dev set first when
// withDevSchema, then the core set. Each migration runs in its own
// transaction holding an advisory lock and is recorded in
// tenantgate.schema_migrations; a recorded migration whose text is
// unchanged is skipped, a changed one is re-applied (all are idempotent).
func Migrate(ctx context.Context, databaseURL string, withDevSchema bool, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return errors.New("migrate: database URL is not a valid PostgreSQL connection string")
	}
	cfg.RuntimeParams["application_name"] = "tenantgate-migrate"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var set []migrations.Migration
	if withDevSchema {
		set = append(set, migrations.Dev()...)
	}
	set = append(set, migrations.Core()...)
	if err := prepareTracking(ctx, conn); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range set {
		applied, err := apply(ctx, conn, m)
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, withHint(err))
		}
		if applied {
			logger.InfoContext(ctx, "migration applied", "migration", m.Name)
		} else {
			logger.DebugContext(ctx, "migration already applied", "migration", m.Name)
		}
	}
	return nil
}

func apply(ctx context.Context, conn *pgx.Conn, m migrations.Migration) (bool, error) {
	sum := sha256.Sum256([]byte(m.SQL))
	checksum := hex.EncodeToString(sum[:])
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
		return false, fmt.Errorf("advisory lock: %w", err)
	}
	var have string
	err = tx.QueryRow(ctx, "SELECT checksum FROM tenantgate.schema_migrations WHERE name = $1", m.Name).Scan(&have)
	switch {
	case err == nil && have == checksum:
		return false, tx.Commit(ctx)
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return false, fmt.Errorf("read tracking table: %w", err)
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tenantgate.schema_migrations (name, checksum) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()`, m.Name, checksum); err != nil {
		return false, fmt.Errorf("record: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// trackingSQL creates the bookkeeping table in schema tenantgate and moves
// the records of earlier releases' public.tenantgate_schema_migrations,
// which Supabase's Data API would serve. Migration core/0003 revokes every
// right on the schema from PUBLIC and the API roles.
const trackingSQL = `
CREATE SCHEMA IF NOT EXISTS tenantgate;
REVOKE ALL ON SCHEMA tenantgate FROM PUBLIC;
CREATE TABLE IF NOT EXISTS tenantgate.schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
DO $$
BEGIN
    IF to_regclass('public.tenantgate_schema_migrations') IS NOT NULL THEN
        INSERT INTO tenantgate.schema_migrations (name, checksum, applied_at)
        SELECT name, checksum, applied_at FROM public.tenantgate_schema_migrations
        ON CONFLICT (name) DO NOTHING;
        DROP TABLE public.tenantgate_schema_migrations;
    END IF;
END
$$;`

// prepareTracking runs trackingSQL in a transaction holding the migration
// lock.
func prepareTracking(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	if _, err := tx.Exec(ctx, trackingSQL); err != nil {
		return fmt.Errorf("tracking table: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("tracking table: commit: %w", err)
	}
	return nil
}

// withHint appends a PostgreSQL error's HINT, which carries the remedy for
// a missing basejump schema.
func withHint(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Hint != "" {
		return fmt.Errorf("%w (hint: %s)", err, pe.Hint)
	}
	return err
}
