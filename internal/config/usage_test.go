package config

import (
	"strings"
	"testing"
	"time"
)

func TestUsageDefaults(t *testing.T) {
	cfg, err := Parse([]byte("store: {tenants_file: t.yaml}"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Usage
	if !u.On() || u.QueueSize != DefaultUsageQueueSize || u.BatchSize != DefaultUsageBatchSize || u.FlushInterval.D() != time.Second || u.AccountLabels != 0 || u.Credits.Enabled {
		t.Fatalf("usage defaults %+v", u)
	}
}

func TestUsageValidation(t *testing.T) {
	pg := "store: {database_url: 'postgres://h/db'}\n"
	file := "store: {tenants_file: t.yaml}\n"
	tests := []struct{ name, yaml, want string }{
		{"queue", file + "usage: {queue_size: -1}", "usage.queue_size"},
		{"batch", file + "usage: {batch_size: 100000}", "usage.batch_size"},
		{"flush", file + "usage: {flush_interval: -1s}", "usage.flush_interval"},
		{"account labels", file + "usage: {account_labels: -1}", "usage.account_labels"},
		{"ndjson with postgres", pg + "usage: {ndjson_path: u.ndjson}", "usage.ndjson_path"},
		{"credits without postgres", file + "usage: {credits: {enabled: true, prices: {m: {input: 1}}}}", "the store is not postgres"},
		{"credits without prices", pg + "usage: {credits: {enabled: true}}", "no model has a price"},
		{"credits with metering off", pg + "usage: {enabled: false, credits: {enabled: true, prices: {m: {input: 1}}}}", "needs usage.enabled"},
		{"negative price", pg + "usage: {credits: {enabled: true, prices: {m: {input: -1}}}}", `usage.credits.prices["m"].input`},
		{"unknown field", file + "usage: {credit: {}}", "credit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(pg+"usage: {account_labels: 50, credits: {enabled: true, prices: {'anthropic.*': {input: 3, output: 15, cache_read: 0.3, cache_write: 3.75}}}}"), func(string) string { return "" }); err != nil {
		t.Fatalf("valid credits config refused: %v", err)
	}
}
