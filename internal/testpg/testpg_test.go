package testpg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartGivesFreshEmptyDatabase(t *testing.T) {
	u1 := Start(t)
	u2 := Start(t)
	if u1 == u2 {
		t.Fatalf("two Start calls returned the same database %q", u1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range []string{u1, u2} {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect %s: %v", u, err)
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')`).Scan(&n); err != nil {
			t.Fatalf("query: %v", err)
		}
		if n != 0 {
			t.Errorf("database %s not empty: %d user tables", u, n)
		}
		var user string
		if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil {
			t.Fatalf("query: %v", err)
		}
		if user == "" {
			t.Errorf("empty current_user")
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE t (id int)`); err != nil {
			t.Errorf("create table: %v", err)
		}
		conn.Close(ctx)
	}
	if !strings.HasPrefix(u1, "postgres://") {
		t.Errorf("url %q is not a postgres URL", u1)
	}
}

func TestFindBinDir(t *testing.T) {
	dir, err := findBinDir()
	if err != nil {
		t.Skipf("no PostgreSQL binaries: %v", err)
	}
	if !hasBinaries(dir) {
		t.Fatalf("findBinDir returned %q without the binaries", dir)
	}
}
