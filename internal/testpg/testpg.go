// Package testpg provides real PostgreSQL databases to integration tests:
// either a fresh database inside the server named by
// TENANTGATE_TEST_DATABASE_URL, or a throwaway cluster created with initdb and
// pg_ctl in a temporary directory and stopped when the test ends.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by Start.
const (
	// EnvDatabaseURL names an existing server in which Start creates a
	// uniquely named database per call.
	EnvDatabaseURL = "TENANTGATE_TEST_DATABASE_URL"
	// EnvRequire turns "PostgreSQL unavailable" from a skip into a failure.
	EnvRequire = "TENANTGATE_REQUIRE_INTEGRATION"
)

// Start returns the URL of a fresh, empty database. With
// TENANTGATE_TEST_DATABASE_URL set, a uniquely named database is created in
// that server and dropped at cleanup. Otherwise a throwaway cluster is
// created with initdb in a temporary directory (binaries looked up on PATH,
// then /usr/lib/postgresql/*/bin), started with pg_ctl on a free loopback
// port, and stopped and removed by t.Cleanup. When running as root the
// cluster runs as an unprivileged user (postgres, else nobody).
//
// If PostgreSQL is unavailable the test is skipped, unless
// TENANTGATE_REQUIRE_INTEGRATION=1, in which case it fails.
func Start(t testing.TB) string {
	t.Helper()
	if base := os.Getenv(EnvDatabaseURL); base != "" {
		u, err := createDatabase(t, base)
		if err != nil {
			unavailable(t, fmt.Errorf("create database in %s server: %w", EnvDatabaseURL, err))
		}
		return u
	}
	bin, err := findBinDir()
	if err != nil {
		unavailable(t, err)
	}
	c, err := startCluster(t, bin)
	if err != nil {
		unavailable(t, err)
	}
	u, err := createDatabase(t, c.url("postgres"))
	if err != nil {
		t.Fatalf("testpg: create database in throwaway cluster: %v", err)
	}
	return u
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("testpg: PostgreSQL is required (%s=1) but unavailable: %v", EnvRequire, err)
	}
	t.Skipf("testpg: PostgreSQL unavailable, skipping (set %s or install PostgreSQL): %v", EnvDatabaseURL, err)
}

// findBinDir returns a directory holding initdb, pg_ctl and postgres.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if hasBinaries(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Prefer the newest major version.
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if hasBinaries(d) {
			return d, nil
		}
	}
	return "", errors.New("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin")
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func hasBinaries(dir string) bool {
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

type cluster struct {
	port int
}

func (c cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// runAs is the credential for cluster processes: nil when not root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres, nobody) to run initdb as")
}

func startCluster(t testing.TB, bin string) (cluster, error) {
	t.Helper()
	cred, err := runAs()
	if err != nil {
		return cluster{}, err
	}
	// Not t.TempDir: its parent directory is private to the current user,
	// which the unprivileged cluster user could not traverse.
	dir, err := os.MkdirTemp("", "tgpg-")
	if err != nil {
		return cluster{}, fmt.Errorf("temp dir: %w", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return cluster{}, fmt.Errorf("chown temp dir: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	logFile := filepath.Join(dir, "postgres.log")
	run := func(timeout time.Duration, name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(2*time.Minute, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		// --no-instructions appeared in PostgreSQL 14; retry without it.
		if err2 := run(2*time.Minute, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err2 != nil {
			return cluster{}, err2
		}
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return cluster{}, err
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
		err = run(time.Minute, "pg_ctl", "-D", data, "-l", logFile, "-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			t.Cleanup(func() {
				if err := run(time.Minute, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
					t.Logf("testpg: stop cluster: %v", err)
				}
			})
			return cluster{port: port}, nil
		}
		lastErr = err
		if b, rerr := os.ReadFile(logFile); rerr == nil {
			lastErr = fmt.Errorf("%w; log: %s", err, tail(string(b), 800))
		}
	}
	return cluster{}, lastErr
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// createDatabase creates a uniquely named database in the server of base and
// returns its URL; the database is dropped at cleanup.
func createDatabase(t testing.TB, base string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	name := "tgtest_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("testpg: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testpg: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}
