package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "h"}, []string{"kind", "result"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"}, []string{"kind"})
	reg.MustRegister(c, h)
	c.WithLabelValues("a", "ok").Add(2)
	c.WithLabelValues("b", "ok").Add(5)
	h.WithLabelValues("a").Observe(1)
	h.WithLabelValues("a").Observe(3)
	for _, tc := range []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"counter by one label", "c_total", []string{"kind", "b"}, 5},
		{"counter by two labels", "c_total", []string{"kind", "a", "result", "ok"}, 2},
		{"no matching series", "c_total", []string{"kind", "z"}, 0},
		{"unknown metric", "nope_total", nil, 0},
		{"histogram sample count", "h_seconds", []string{"kind", "a"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Value(t, reg, tc.metric, tc.labels...); got != tc.want {
				t.Fatalf("Value = %v, want %v", got, tc.want)
			}
		})
	}
}
