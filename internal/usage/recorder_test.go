package usage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type memSink struct {
	mu      sync.Mutex
	recs    []Record
	fail    int // fail the next n writes
	block   chan struct{}
	batches int
}

func (s *memSink) Write(ctx context.Context, recs []Record) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	if s.fail > 0 {
		s.fail--
		return errors.New("sink down")
	}
	s.recs = append(s.recs, recs...)
	return nil
}

func (s *memSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func rec(i int) Record {
	return Record{RequestID: fmt.Sprintf("req-%d", i), AccountID: fmt.Sprintf("acct-%d", i%3), Tier: "free", Model: "m", Operation: "Converse",
		Status: 200, Complete: true, FinalUsage: true, Tokens: Tokens{Input: 10, Output: 5}}
}

// Records queued before shutdown are all written by the final flush.
func TestRecorderFlushesOnShutdown(t *testing.T) {
	sink := &memSink{}
	r, err := NewRecorder(Options{Sink: sink, BatchSize: 7, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		r.Record(rec(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if sink.len() != 100 {
		t.Fatalf("written %d, want 100", sink.len())
	}
}

// A full queue drops records and counts them, without blocking the caller.
func TestRecorderDropsWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	sink := &memSink{block: make(chan struct{})}
	r, err := NewRecorder(Options{Sink: sink, QueueSize: 5, BatchSize: 1, FlushInterval: time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	start := time.Now()
	for i := range 50 {
		r.Record(rec(i))
	}
	if time.Since(start) > time.Second {
		t.Fatal("Record blocked")
	}
	dropped := testutil.ToFloat64(r.dropped.WithLabelValues("queue_full"))
	if dropped < 50-5-2 { // queue of 5, at most one batch in the writer
		t.Fatalf("dropped %v", dropped)
	}
	close(sink.block)
	cancel()
	<-done
	dropped += testutil.ToFloat64(r.dropped.WithLabelValues("sink_error")) + testutil.ToFloat64(r.dropped.WithLabelValues("shutdown"))
	if got := float64(sink.len()) + dropped; got != 50 {
		t.Fatalf("written %d + dropped %v != 50", sink.len(), dropped)
	}
}

// A failing sink is retried; a batch that keeps failing is dropped and
// counted.
func TestRecorderSinkErrors(t *testing.T) {
	sink := &memSink{fail: 1}
	r, err := NewRecorder(Options{Sink: sink, BatchSize: 10, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r.Record(rec(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.Run(ctx)
	if sink.len() != 10 || sink.batches != 2 {
		t.Fatalf("written %d in %d attempts", sink.len(), sink.batches)
	}
	sink2 := &memSink{fail: sinkAttempts}
	r2, _ := NewRecorder(Options{Sink: sink2, BatchSize: 10, FlushInterval: time.Hour})
	for i := range 10 {
		r2.Record(rec(i))
	}
	_ = r2.Run(ctx)
	if sink2.len() != 0 || testutil.ToFloat64(r2.dropped.WithLabelValues("sink_error")) != 10 {
		t.Fatalf("written %d, dropped %v", sink2.len(), testutil.ToFloat64(r2.dropped.WithLabelValues("sink_error")))
	}
}

// Metrics carry the tokens; model and account labels are capped.
func TestRecorderMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := NewRecorder(Options{Registerer: reg, ModelLabels: 2, AccountLabels: 2,
		Prices: PriceTable{"m*": {Input: 2, Output: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, model := range []string{"m1", "m2", "m3", "m4"} {
		x := rec(i)
		x.Model = model
		x.AccountID = fmt.Sprintf("acct-%d", i)
		r.Record(x)
	}
	if n := testutil.CollectAndCount(r.tokens); n != 3*2 { // m1, m2, other × input, output
		t.Fatalf("%d token series, want 6", n)
	}
	if got := testutil.ToFloat64(r.perAcct.WithLabelValues("other", "input")); got != 20 {
		t.Fatalf("other accounts' input tokens %v, want 20", got)
	}
	if got := testutil.ToFloat64(r.cost.WithLabelValues("free", "other")); got != 2*(10*2+5*10)/1e6 {
		t.Fatalf("credits %v", got)
	}
	names := map[string]bool{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"tenantgate_gen_ai_client_token_usage", "tenantgate_usage_requests_total", "tenantgate_usage_account_tokens_total", "tenantgate_usage_records_dropped_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered (have %v)", n, names)
		}
	}
}

func TestPriceTable(t *testing.T) {
	p := PriceTable{"anthropic.*": {Input: 1}, "anthropic.claude-3-haiku*": {Input: 2}, "exact": {Input: 3, Output: 4, CacheRead: 5, CacheWrite: 6}}
	for model, want := range map[string]float64{"anthropic.claude-3-haiku-v1": 2, "anthropic.other": 1, "exact": 3} {
		if got, ok := p.Lookup(model); !ok || got.Input != want {
			t.Errorf("%s: %+v %v", model, got, ok)
		}
	}
	if _, ok := p.Lookup("meta.llama"); ok {
		t.Error("unpriced model priced")
	}
	c, ok := p.Cost(Record{Model: "exact", Tokens: Tokens{1e6, 1e6, 1e6, 1e6}})
	if !ok || c != 3+4+5+6 {
		t.Errorf("cost %v", c)
	}
	// As called first, else as resolved.
	if c, ok := p.Cost(Record{Model: "arn:aws:bedrock:eu-west-1:1:application-inference-profile/x", ResolvedModel: "exact", Tokens: Tokens{Input: 1e6}}); !ok || c != 3 {
		t.Errorf("resolved cost %v %v", c, ok)
	}
}

func TestNDJSONSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.ndjson")
	s, err := OpenNDJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	cost := 0.5
	a, b := rec(1), rec(2)
	a.Cost = &cost
	if err := s.Write(context.Background(), []Record{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), []Record{a}); err != nil { // retried batch
		t.Fatal(err)
	}
	s.Close()
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Fatalf("%d lines:\n%s", n, data)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	rows, err := ReportNDJSON(path, ReportQuery{Account: a.AccountID, By: ByModel})
	if err != nil || len(rows) != 1 || rows[0].Requests != 1 || rows[0].Input != 10 || rows[0].Credits != 0.5 {
		t.Fatalf("report %+v %v", rows, err)
	}
}

// Records arriving after Run has flushed and returned are counted as
// dropped, never silently queued.
func TestRecorderCountsLateRecords(t *testing.T) {
	sink := &memSink{}
	r, err := NewRecorder(Options{Sink: sink, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r.Record(rec(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.Run(ctx)
	r.Record(rec(2))
	if sink.len() != 1 || testutil.ToFloat64(r.dropped.WithLabelValues("shutdown")) != 1 {
		t.Fatalf("written %d, dropped %v", sink.len(), testutil.ToFloat64(r.dropped.WithLabelValues("shutdown")))
	}
}
