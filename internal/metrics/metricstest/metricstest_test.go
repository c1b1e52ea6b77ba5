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

func TestSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "h"}, []string{"result", "kind"})
	reg.MustRegister(c)
	c.WithLabelValues("ok", "a").Add(2)
	c.WithLabelValues("error", "b").Inc()
	got := Series(t, reg, "c_total")
	want := map[string]float64{"kind=a,result=ok,": 2, "kind=b,result=error,": 1}
	if len(got) != len(want) {
		t.Fatalf("Series = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Series[%s] = %v, want %v", k, got[k], v)
		}
	}
	if n := len(Series(t, reg, "nope_total")); n != 0 {
		t.Errorf("unknown metric has %d series", n)
	}
}
