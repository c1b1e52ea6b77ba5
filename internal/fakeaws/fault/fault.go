// Package fault holds the runtime-switchable fault injection of the fake
// AWS services: added latency, an "unavailable" mode (HTTP 503 or a dropped
// connection) and failing the next N requests with 503.
package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Mode is the unavailability mode.
type Mode string

const (
	// ModeNone serves normally.
	ModeNone Mode = ""
	// Mode503 answers every request with HTTP 503.
	Mode503 Mode = "503"
	// ModeDrop closes the connection without a response.
	ModeDrop Mode = "drop"
)

// Action is what the service must do with a request.
type Action int

const (
	// Serve the request normally.
	Serve Action = iota
	// Unavailable: answer 503 in the service's error format.
	Unavailable
	// Drop the connection.
	Drop
)

// Injector is safe for concurrent use; the zero value injects nothing.
type Injector struct {
	mu       sync.Mutex
	latency  time.Duration
	mode     Mode
	failNext int
}

// State is the injector's current settings.
type State struct {
	LatencyMS int64 `json:"latency_ms"`
	Mode      Mode  `json:"mode"`
	FailNext  int   `json:"fail_next"`
}

// SetLatency adds d before every response.
func (i *Injector) SetLatency(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.latency = d
}

// SetMode switches the unavailable mode.
func (i *Injector) SetMode(m Mode) error {
	switch m {
	case ModeNone, Mode503, ModeDrop:
	default:
		return fmt.Errorf("fault: unknown mode %q", m)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.mode = m
	return nil
}

// FailNext makes the next n requests answer 503.
func (i *Injector) FailNext(n int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.failNext = max(n, 0)
}

// State returns the current settings.
func (i *Injector) State() State {
	i.mu.Lock()
	defer i.mu.Unlock()
	return State{LatencyMS: i.latency.Milliseconds(), Mode: i.mode, FailNext: i.failNext}
}

// Apply waits for the configured latency (or until ctx ends) and returns
// what to do with the request; it consumes one of the FailNext budget.
func (i *Injector) Apply(ctx context.Context) Action {
	i.mu.Lock()
	lat, mode := i.latency, i.mode
	fail := i.failNext > 0
	if fail {
		i.failNext--
	}
	i.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	switch {
	case mode == ModeDrop:
		return Drop
	case mode == Mode503 || fail:
		return Unavailable
	}
	return Serve
}

// DropConnection closes the client connection without writing a response.
func DropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or no hijacking: abort the stream.
	panic(http.ErrAbortHandler)
}

// Handler serves the injector's admin API: GET returns the State as JSON;
// PUT/POST with a JSON State (fields optional) updates it.
func (i *Injector) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut, http.MethodPost:
			var in struct {
				LatencyMS *int64 `json:"latency_ms"`
				Mode      *Mode  `json:"mode"`
				FailNext  *int   `json:"fail_next"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
				http.Error(w, "invalid JSON: "+err.Error(), http.StatusBadRequest)
				return
			}
			if in.Mode != nil {
				if err := i.SetMode(*in.Mode); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
			}
			if in.LatencyMS != nil {
				i.SetLatency(time.Duration(*in.LatencyMS) * time.Millisecond)
			}
			if in.FailNext != nil {
				i.FailNext(*in.FailNext)
			}
		default:
			w.Header().Set("Allow", "GET, PUT, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(i.State())
	})
}
