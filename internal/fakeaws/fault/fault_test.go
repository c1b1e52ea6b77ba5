package fault

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestInjector(t *testing.T) {
	var in Injector
	ctx := context.Background()
	if a := in.Apply(ctx); a != Serve {
		t.Fatalf("zero injector action %v", a)
	}
	in.FailNext(2)
	got := []Action{in.Apply(ctx), in.Apply(ctx), in.Apply(ctx)}
	if got[0] != Unavailable || got[1] != Unavailable || got[2] != Serve {
		t.Fatalf("fail-next sequence %v", got)
	}
	if err := in.SetMode(ModeDrop); err != nil {
		t.Fatal(err)
	}
	if a := in.Apply(ctx); a != Drop {
		t.Fatalf("drop mode action %v", a)
	}
	if err := in.SetMode("bogus"); err == nil {
		t.Fatal("bogus mode accepted")
	}
	_ = in.SetMode(ModeNone)
	in.SetLatency(50 * time.Millisecond)
	start := time.Now()
	in.Apply(ctx)
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("latency not applied: %v", el)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	in.SetLatency(time.Hour)
	if a := in.Apply(cctx); a != Serve {
		t.Fatalf("action %v", a)
	}
}

func TestHandler(t *testing.T) {
	var in Injector
	h := in.Handler()
	cases := []struct {
		method, body string
		status       int
		want         State
	}{
		{"POST", `{"mode":"503","latency_ms":5}`, 200, State{LatencyMS: 5, Mode: Mode503}},
		{"PUT", `{"fail_next":3}`, 200, State{LatencyMS: 5, Mode: Mode503, FailNext: 3}},
		{"POST", `{"mode":"nope"}`, 400, State{LatencyMS: 5, Mode: Mode503, FailNext: 3}},
		{"POST", `{`, 400, State{LatencyMS: 5, Mode: Mode503, FailNext: 3}},
		{"DELETE", ``, 405, State{LatencyMS: 5, Mode: Mode503, FailNext: 3}},
		{"GET", ``, 200, State{LatencyMS: 5, Mode: Mode503, FailNext: 3}},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, "/", strings.NewReader(c.body)))
		if rec.Code != c.status {
			t.Fatalf("%s %s: status %d", c.method, c.body, rec.Code)
		}
		if c.status == http.StatusOK {
			var s State
			if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s != c.want {
				t.Fatalf("%s %s: state %+v (%v)", c.method, c.body, s, err)
			}
		}
		if in.State() != c.want {
			t.Fatalf("%s %s: injector state %+v", c.method, c.body, in.State())
		}
	}
}
