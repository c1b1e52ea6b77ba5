package testpg

import (
	"context"
	"os"
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

func TestStartInExistingServer(t *testing.T) {
	server := Start(t)
	t.Setenv(EnvDatabaseURL, server)
	u := Start(t)
	if u == server {
		t.Fatalf("Start with %s returned the server database itself", EnvDatabaseURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var db string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db, "tgtest_") || !strings.HasSuffix(u, "/"+db+"?sslmode=disable") {
		t.Fatalf("database %q, url %q", db, u)
	}
}

func TestUnavailableServer(t *testing.T) {
	if os.Getenv(EnvRequire) == "1" {
		t.Skip("exercises the skip path, which is a failure when integration is required")
	}
	var skipped bool
	t.Run("inner", func(t *testing.T) {
		t.Setenv(EnvDatabaseURL, "postgres://nobody@127.0.0.1:1/x?connect_timeout=1&sslmode=disable")
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Fatal("Start did not skip for an unreachable server")
	}
}
