package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/testpg"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tenantgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	const secret = "api-key-hmac-secret-0123456789abcdef"
	good := writeFile(t, "server:\n  log_level: debug\n")
	bad := writeFile(t, "server:\n  log_level: loud\n  grpc_port: 1\n")
	invalid := writeFile(t, "server:\n  log_level: loud\n  log_format: xml\n")
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
		notIn      string
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "Usage:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: "Usage:"},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "tenantgate "},
		{name: "version extra arg", args: []string{"version", "x"}, wantCode: 2},
		{name: "check-config defaults", args: []string{"check-config"}, wantCode: 0, wantStdout: "grpc_listen: 127.0.0.1:9191", wantStderr: "configuration OK (store: embedded)"},
		{name: "check-config file with env secret", args: []string{"check-config", "--config", good},
			env:      map[string]string{"API_KEY_SECRET": secret, "TENANTGATE_DATABASE_URL": "postgres://u:dbpass@h/db"},
			wantCode: 0, wantStdout: "secret: REDACTED", wantStderr: "store: postgres", notIn: secret + "|dbpass"},
		{name: "check-config invalid", args: []string{"check-config", "--config", bad}, wantCode: 1, wantStderr: "grpc_port"},
		{name: "check-config missing file", args: []string{"check-config", "--config", "/nonexistent/x.yaml"}, wantCode: 1, wantStderr: "no such file"},
		{name: "check-config bad flag", args: []string{"check-config", "--cfg", good}, wantCode: 2, wantStderr: "flag provided but not defined"},
		{name: "check-config stray arg", args: []string{"check-config", "extra"}, wantCode: 2, wantStderr: `unexpected argument "extra"`},
		{name: "migrate without url", args: []string{"migrate"}, wantCode: 2, wantStderr: "TENANTGATE_DATABASE_URL"},
		{name: "migrate bad url", args: []string{"migrate", "--database-url", "postgres://u:topsecret@%zz"}, wantCode: 1, notIn: "topsecret"},
		{name: "serve invalid config", args: []string{"serve", "--config", bad}, wantCode: 1, wantStderr: "grpc_port not found"},
		{name: "several validation errors on one line", args: []string{"check-config", "--config", invalid}, wantCode: 1,
			wantStderr: `server.log_level: "loud" is not one of debug, info, warn, error; server.log_format`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tt.env[k] }
			code := run(context.Background(), tt.args, &stdout, &stderr, getenv)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q: %s", tt.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q: %s", tt.wantStderr, stderr.String())
			}
			if tt.notIn != "" {
				for _, s := range strings.Split(tt.notIn, "|") {
					if strings.Contains(stdout.String()+stderr.String(), s) {
						t.Errorf("output contains secret %q", s)
					}
				}
			}
			if code == 1 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("error is not one line: %s", stderr.String())
			}
		})
	}
}

func TestServeUntilSignal(t *testing.T) {
	cfg := writeFile(t, "server:\n  grpc_listen: 127.0.0.1:0\n  http_listen: 127.0.0.1:0\n  shutdown_grace: 2s\n")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg}, &stdout, &stderr, func(string) string { return "" })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "tenantgate serving") {
		if time.Now().After(deadline) {
			t.Fatalf("not serving: %s", stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(stderr.String(), "tenantgate stopped") {
		t.Errorf("no stop log: %s", stderr.String())
	}
}

func TestMigrateAgainstPostgres(t *testing.T) {
	url := testpg.Start(t)
	getenv := func(k string) string {
		if k == "TENANTGATE_DATABASE_URL" {
			return url
		}
		return ""
	}
	for i := 0; i < 2; i++ { // idempotent
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"migrate", "--dev"}, &stdout, &stderr, getenv); code != 0 {
			t.Fatalf("migrate run %d: exit %d: %s", i, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "migrations applied") {
			t.Errorf("no success log: %s", stderr.String())
		}
	}
}
