package usage_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testpg"
	"github.com/tenantgate/tenantgate/internal/usage"
)

const acct = "a0000000-0000-4000-8000-000000000001"

// The PostgreSQL sink stores a request id once and debits its cost once,
// in the same transaction; the API roles have no right on the table; the
// report sums what was stored.
func TestPGSinkIdempotentCredits(t *testing.T) {
	url := testpg.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := app.Migrate(ctx, url, true, nil); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account)
		VALUES ($1, gen_random_uuid(), 'Acme', 'acme', false)`, acct); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO public.credit_accounts (account_id, tier, balance) VALUES ($1, 'free', 100)`, acct); err != nil {
		t.Fatal(err)
	}
	prices := usage.PriceTable{"m1": {Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75}}
	now := time.Now().UTC()
	var recs []usage.Record
	var want float64
	for i, tk := range []usage.Tokens{{Input: 1000, Output: 200}, {Input: 10, Output: 0, CacheRead: 5000, CacheWrite: 700}, {Input: 7}} {
		r := usage.Record{RequestID: "req-" + string(rune('a'+i)), Time: now.Add(-time.Duration(i) * 25 * time.Hour), AccountID: acct, Model: "m1",
			Operation: "Converse", Status: 200, Complete: true, FinalUsage: true, Tokens: tk}
		c, ok := prices.Cost(r)
		if !ok {
			t.Fatal("no price")
		}
		r.Cost = &c
		want += c
		recs = append(recs, r)
	}
	// Not a UUID (tenants-file ids may be anything): stored, no debit.
	one := 1.0
	recs = append(recs, usage.Record{RequestID: "req-x", Time: now, AccountID: "not-a-uuid", Model: "m1", Operation: "Converse", Status: 200, Cost: &one})
	sink := usage.NewPGSink(pool, true)
	if err := sink.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// The same batch again (a retry after a lost acknowledgement).
	if err := sink.Write(ctx, recs[:2]); err != nil {
		t.Fatal(err)
	}
	var n int
	var balance float64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tenantgate.usage_records`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("rows %d %v", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT balance::float8 FROM public.credit_accounts WHERE account_id = $1`, acct).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if d := (100 - balance) - want; d > 1e-9 || d < -1e-9 {
		t.Fatalf("debited %v, want %v", 100-balance, want)
	}
	var apiRights bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.role_table_grants
		WHERE table_schema = 'tenantgate' AND table_name = 'usage_records' AND grantee IN ('PUBLIC', 'anon', 'authenticated'))`).Scan(&apiRights); err != nil || apiRights {
		t.Fatalf("API roles have rights on usage_records: %v %v", apiRights, err)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	byDay, err := usage.ReportPG(ctx, conn, usage.ReportQuery{Account: acct, Since: now.Add(-72 * time.Hour), By: usage.ByDay})
	if err != nil || len(byDay) != 3 {
		t.Fatalf("by day %+v %v", byDay, err)
	}
	byModel, err := usage.ReportPG(ctx, conn, usage.ReportQuery{Account: acct, Since: now.Add(-24 * time.Hour), By: usage.ByModel})
	if err != nil || len(byModel) != 1 || byModel[0].Requests != 1 || byModel[0].Input != 1000 || byModel[0].Output != 200 {
		t.Fatalf("by model %+v %v", byModel, err)
	}
	var out bytes.Buffer
	if err := usage.PrintReport(&out, usage.ByModel, byModel); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "m1") || !strings.Contains(out.String(), "TOTAL") || !strings.Contains(out.String(), "1000") {
		t.Fatalf("table:\n%s", out.String())
	}
}
