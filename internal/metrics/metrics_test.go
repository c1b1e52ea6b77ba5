package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func newCounter(help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: help}, []string{"l"})
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name      string
		reg       func() prometheus.Registerer
		wantSame  bool // the returned collector is the one passed in
		wantError bool
	}{
		{"nil registry", func() prometheus.Registerer { return nil }, true, false},
		{"fresh registry", func() prometheus.Registerer { return prometheus.NewRegistry() }, true, false},
		{"already registered reuses existing", func() prometheus.Registerer {
			r := prometheus.NewRegistry()
			r.MustRegister(newCounter("h"))
			return r
		}, false, false},
		{"conflicting descriptor fails", func() prometheus.Registerer {
			r := prometheus.NewRegistry()
			r.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "h"}, []string{"other"}))
			return r
		}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCounter("h")
			got, err := Register(tt.reg(), c)
			if (err != nil) != tt.wantError {
				t.Fatalf("err = %v, want error %v", err, tt.wantError)
			}
			if (got == c) != tt.wantSame {
				t.Fatalf("returned the passed collector = %v, want %v", got == c, tt.wantSame)
			}
		})
	}
}
