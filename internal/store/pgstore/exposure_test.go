package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/testpg"
	"github.com/tenantgate/tenantgate/migrations"
)

// supabaseRoles creates the Data API roles of a Supabase project with the
// grants Supabase gives them (supabase/postgres initial schema): USAGE on
// schema public and, through default privileges of the migrating role, ALL
// on every table, sequence and function later created in public. Roles are
// cluster-wide, so an existing one is reused.
const supabaseRoles = `
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
`

// hostileDefaults goes beyond Supabase: every schema and table the
// migrating role creates anywhere is granted to PUBLIC and the API roles,
// so only the migration's own REVOKEs keep them out.
const hostileDefaults = `
ALTER DEFAULT PRIVILEGES GRANT ALL ON SCHEMAS TO PUBLIC, anon, authenticated;
ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC, anon, authenticated;
ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO PUBLIC, anon, authenticated;
`

// denied reports whether err is PostgreSQL refusing access: no privilege
// (which includes a row-level security refusal of an INSERT) or no such
// relation for the role.
func denied(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "42P01" || pe.Code == "3F000")
}

// TestSupabaseAPIRolesCannotReachTenantData: on a database with Supabase's
// anon/authenticated roles and default grants, neither role can read or
// change routing rows, API keys, plans or the migration bookkeeping. Each
// statement must be refused or see and touch no row.
func TestSupabaseAPIRolesCannotReachTenantData(t *testing.T) {
	const attackerARN = "arn:aws:iam::999999999999:role/Attacker"
	for _, variant := range []struct{ name, setup string }{
		{"supabase defaults", supabaseRoles},
		{"hostile defaults", supabaseRoles + hostileDefaults},
	} {
		t.Run(variant.name, func(t *testing.T) {
			url := testpg.Start(t)
			ctx := context.Background()
			exec(t, url, variant.setup)
			if err := Migrate(ctx, url, true, nil); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			exec(t, url, seed)

			// Where the routing table lives now, and where it used to.
			routing := []string{"tenantgate.enterprise_bedrock_routing", "public.enterprise_bedrock_routing"}
			type probe struct{ name, sql string }
			var probes []probe
			for _, tbl := range routing {
				probes = append(probes,
					probe{"select " + tbl, `SELECT account_id, bedrock_role_arn, bedrock_external_id FROM ` + tbl},
					probe{"insert " + tbl, `INSERT INTO ` + tbl + ` (account_id, bedrock_role_arn, bedrock_external_id) VALUES ('` + carolAcc + `', '` + attackerARN + `', 'attacker-ext')`},
					probe{"update " + tbl, `UPDATE ` + tbl + ` SET bedrock_role_arn = '` + attackerARN + `' RETURNING account_id`},
					probe{"delete " + tbl, `DELETE FROM ` + tbl + ` RETURNING account_id`},
				)
			}
			for _, tbl := range []string{"public.api_keys", "public.credit_accounts"} {
				probes = append(probes,
					probe{"select " + tbl, `SELECT * FROM ` + tbl},
					probe{"update " + tbl, `UPDATE ` + tbl + ` SET account_id = account_id RETURNING account_id`},
					probe{"delete " + tbl, `DELETE FROM ` + tbl + ` RETURNING account_id`},
				)
			}
			probes = append(probes,
				probe{"insert public.api_keys", `INSERT INTO public.api_keys (public_key, secret_key_hash, account_id) VALUES ('pk_` + strings.Repeat("x", 32) + `', '` + hash + `', '` + acme + `') RETURNING key_id`},
				probe{"select tenantgate.schema_migrations", `SELECT * FROM tenantgate.schema_migrations`},
				probe{"select public.tenantgate_schema_migrations", `SELECT * FROM public.tenantgate_schema_migrations`},
			)

			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for _, role := range []string{"anon", "authenticated"} {
				for _, p := range probes {
					rows, err := asRole(ctx, conn, role, p.sql)
					switch {
					case err == nil && rows == 0:
						// Row-level security: nothing visible, nothing changed.
					case err == nil:
						t.Errorf("%s: %s reached %d rows", role, p.name, rows)
					case !denied(err):
						t.Errorf("%s: %s: unexpected error (want permission denied or no such table): %v", role, p.name, err)
					}
				}
			}
			// tenantgate's own connection still reads the routes.
			s := openStore(t, url)
			if r, err := s.Route(ctx, acme); err != nil || r.RoleARN != roleARN || r.ExternalID != "acme-external-id-7f3c" {
				t.Fatalf("owner lost access: %+v %v", r, err)
			}
		})
	}
}

// asRole runs sql as role in a transaction that is rolled back and returns
// the number of rows it returned or affected.
func asRole(ctx context.Context, conn *pgx.Conn, role, sql string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	var n int64
	for rows.Next() {
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if tag := rows.CommandTag(); !tag.Select() && tag.RowsAffected() > n {
		n = tag.RowsAffected()
	}
	return n, nil
}

// oldLayout gives url the schema of tenantgate releases before the
// tenantgate schema existed: the first dev migration and the first two core
// migrations applied and recorded in public.tenantgate_schema_migrations.
func oldLayout(t *testing.T, url string) {
	t.Helper()
	old := []string{"dev/0001_basejump.sql", "core/0001_enterprise_bedrock_routing.sql", "core/0002_invalidation_notify.sql"}
	exec(t, url, `CREATE TABLE public.tenantgate_schema_migrations (
		name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
	all := append(migrations.Dev(), migrations.Core()...)
	for _, name := range old {
		i := slices.IndexFunc(all, func(m migrations.Migration) bool { return m.Name == name })
		if i < 0 {
			t.Fatalf("migration %s is no longer embedded", name)
		}
		exec(t, url, all[i].SQL)
		sum := sha256.Sum256([]byte(all[i].SQL))
		exec(t, url, `INSERT INTO public.tenantgate_schema_migrations (name, checksum) VALUES ($1, $2)`, name, hex.EncodeToString(sum[:]))
	}
}

// oldSeed is seed with the routing row in the old public table, plus a
// disabled route with a region and timestamps of its own.
var oldSeed = strings.Replace(seed, "tenantgate.enterprise_bedrock_routing", "public.enterprise_bedrock_routing", 1) + `
INSERT INTO public.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id, region, enabled, created_at, updated_at) VALUES
  ('` + carolAcc + `', 'arn:aws:iam::444455556666:role/CarolBedrock', 'carol-ext-0001', NULL, false, '2025-01-02T03:04:05Z', '2025-02-03T04:05:06Z');
`

func TestMigrateMovesRoutesOutOfPublic(t *testing.T) {
	url := testpg.Start(t)
	ctx := context.Background()
	oldLayout(t, url)
	exec(t, url, oldSeed)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const cols = `account_id::text, bedrock_role_arn, bedrock_external_id, coalesce(region, ''), enabled, created_at, updated_at`
	type row struct {
		account, arn, ext, region string
		enabled                   bool
		created, updated          time.Time
	}
	read := func(table string) []row {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT `+cols+` FROM `+table+` ORDER BY account_id`)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.account, &x.arn, &x.ext, &x.region, &x.enabled, &x.created, &x.updated)
			return x, err
		})
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		return out
	}
	before := read("public.enterprise_bedrock_routing")
	if len(before) != 2 {
		t.Fatalf("old layout holds %d routes, want 2", len(before))
	}

	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("migrate old layout: %v", err)
	}
	if after := read("tenantgate.enterprise_bedrock_routing"); !slices.Equal(after, before) {
		t.Fatalf("moved rows differ:\n got %+v\nwant %+v", after, before)
	}
	var gone struct{ routing, tracking *string }
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.enterprise_bedrock_routing')::text, to_regclass('public.tenantgate_schema_migrations')::text`).Scan(&gone.routing, &gone.tracking); err != nil {
		t.Fatal(err)
	}
	if gone.routing != nil || gone.tracking != nil {
		t.Errorf("public tables left behind: routing %v, bookkeeping %v", gone.routing, gone.tracking)
	}
	var recorded []string
	rows, err := conn.Query(ctx, `SELECT name FROM tenantgate.schema_migrations ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	if recorded, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range append(migrations.Core(), migrations.Dev()...) {
		want = append(want, m.Name)
	}
	slices.Sort(want)
	if !slices.Equal(recorded, want) {
		t.Errorf("bookkeeping = %v, want %v", recorded, want)
	}

	// The moved table keeps its triggers: updated_at and NOTIFY.
	listen, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listen.Close(ctx)
	if _, err := listen.Exec(ctx, "LISTEN tenantgate_invalidate"); err != nil {
		t.Fatal(err)
	}
	exec(t, url, `UPDATE tenantgate.enterprise_bedrock_routing SET enabled = true WHERE account_id = '`+carolAcc+`'`)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := listen.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification from the moved table: %v", err)
	}
	if ev, err := ParsePayload(n.Payload); err != nil || ev != (Event{Table: "enterprise_bedrock_routing", AccountID: carolAcc}) {
		t.Errorf("notification %q = %+v, %v", n.Payload, ev, err)
	}
	for _, r := range read("tenantgate.enterprise_bedrock_routing") {
		if r.account == carolAcc && !r.updated.After(before[len(before)-1].updated) {
			t.Errorf("updated_at not advanced on the moved table: %v", r.updated)
		}
	}
	// And the store reads it.
	s := openStore(t, url)
	if r, err := s.Route(ctx, carolAcc); err != nil || !r.Enabled || r.ExternalID != "carol-ext-0001" {
		t.Errorf("Route(carol) = %+v, %v", r, err)
	}
}

func TestMigrateRefusesRoutesWithoutExternalID(t *testing.T) {
	url := testpg.Start(t)
	ctx := context.Background()
	oldLayout(t, url)
	exec(t, url, oldSeed+`
UPDATE public.enterprise_bedrock_routing SET bedrock_external_id = NULL;`)

	err := Migrate(ctx, url, true, nil)
	if err == nil {
		t.Fatal("migrate accepted routes without bedrock_external_id")
	}
	for _, want := range []string{"bedrock_external_id", acme, carolAcc} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// Nothing moved or dropped: the operator fixes the rows and migrates again.
	var n int
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM public.enterprise_bedrock_routing`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("old routes after refusal: %d, %v", n, err)
	}
	exec(t, url, `UPDATE public.enterprise_bedrock_routing SET bedrock_external_id = 'ext-' || left(account_id::text, 8)`)
	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("migrate after fixing the rows: %v", err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM tenantgate.enterprise_bedrock_routing WHERE bedrock_external_id LIKE 'ext-%'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("moved routes: %d, %v", n, err)
	}
}

// TestTriggersFireForRolesWithoutExecute: the trigger functions' EXECUTE is
// revoked from everyone, yet a role of the application that may change a
// cached table still fires the NOTIFY trigger.
func TestTriggersFireForRolesWithoutExecute(t *testing.T) {
	url := testpg.Start(t)
	ctx := context.Background()
	exec(t, url, supabaseRoles)
	if err := Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	exec(t, url, seed+`
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantgate_test_writer') THEN
        CREATE ROLE tenantgate_test_writer NOLOGIN BYPASSRLS;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO tenantgate_test_writer;
GRANT SELECT, UPDATE ON public.credit_accounts TO tenantgate_test_writer;`)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var canExec bool
	if err := conn.QueryRow(ctx, `SELECT has_function_privilege('tenantgate_test_writer', 'public.tenantgate_notify_invalidate()', 'EXECUTE')`).Scan(&canExec); err != nil {
		t.Fatal(err)
	}
	if canExec {
		t.Fatal("EXECUTE on the trigger function is still granted to PUBLIC")
	}
	if _, err := conn.Exec(ctx, "LISTEN tenantgate_invalidate"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE tenantgate_test_writer"); err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, `UPDATE public.credit_accounts SET tier = 'free' WHERE account_id = '`+acme+`'`); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("writer update: %v, %v", tag, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	if ev, err := ParsePayload(n.Payload); err != nil || ev != (Event{Table: "credit_accounts", AccountID: acme}) {
		t.Errorf("notification %q = %+v, %v", n.Payload, ev, err)
	}
}
