package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUsageCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.ndjson")
	now := time.Now().UTC()
	var lines []string
	for i, r := range []map[string]any{
		{"request_id": "r1", "time": now, "account_id": "acme", "model": "m1", "input_tokens": 10, "output_tokens": 2},
		{"request_id": "r2", "time": now, "account_id": "acme", "model": "m2", "input_tokens": 5, "output_tokens": 1, "cost": 0.25},
		{"request_id": "r3", "time": now, "account_id": "other", "model": "m1", "input_tokens": 99},
		{"request_id": "r4", "time": now.Add(-48 * time.Hour), "account_id": "acme", "model": "m1", "input_tokens": 99},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(i, err)
		}
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(string) string { return "" }
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"usage", "--account", "acme", "--since", "24h", "--ndjson", path}, &out, &errOut, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{"MODEL", "m1", "m2", "TOTAL"} {
		if !strings.Contains(got, want) {
			t.Fatalf("output lacks %q:\n%s", want, got)
		}
	}
	total := strings.Fields(strings.Split(strings.TrimSpace(got), "\n")[3])
	if strings.Join(total, " ") != "TOTAL 2 15 3 0 0 0.250000" {
		t.Fatalf("total line %q:\n%s", total, got)
	}
	for _, args := range [][]string{{"usage"}, {"usage", "--account", "a", "--by", "week", "--ndjson", path}, {"usage", "--account", "a"}} {
		if code := run(context.Background(), args, &out, &errOut, env); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
