package main

import (
	"fmt"
	"slices"
	"strings"
)

// cell is one body size and connection count.
type cell struct{ body, conns int }

// results holds every round's metrics per cell and variant.
type results struct {
	m map[cell]map[string][]metrics
}

func newResults() *results { return &results{m: map[cell]map[string][]metrics{}} }

func (r *results) add(c cell, variant string, m metrics) {
	if r.m[c] == nil {
		r.m[c] = map[string][]metrics{}
	}
	r.m[c][variant] = append(r.m[c][variant], m)
}

// med is the median of one metric over the rounds.
func med(ms []metrics, f func(metrics) float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// table prints one Markdown table: a row per cell and variant with the
// medians, the variant's req/s as a multiple of B's and its p50 minus B's.
func (r *results) table(vs []variant, bodies, conns []int) string {
	var b strings.Builder
	b.WriteString("| body | c | variant | req/s | p50 ms | p99 ms | req/s ÷ B | p50 − B ms | tenantgate CPU µs/req | Envoy CPU µs/req |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, body := range bodies {
		for _, c := range conns {
			byV := r.m[cell{body, c}]
			base, haveB := byV["B"]
			for _, v := range vs {
				ms := byV[v.Name]
				rps := med(ms, func(m metrics) float64 { return m.rps })
				p50 := med(ms, func(m metrics) float64 { return m.p50ms })
				p99 := med(ms, func(m metrics) float64 { return m.p99ms })
				ratio, delta := "-", "-"
				if haveB && v.Name != "B" {
					ratio = fmt.Sprintf("%.2f×", rps/med(base, func(m metrics) float64 { return m.rps }))
					delta = fmt.Sprintf("%+.2f", p50-med(base, func(m metrics) float64 { return m.p50ms }))
				}
				tg := "-"
				if v.Name == "C" || v.Name == "D" {
					tg = fmt.Sprintf("%.0f", med(ms, func(m metrics) float64 { return m.tgCPUus }))
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %.2f | %.2f | %s | %s | %s | %.0f |\n",
					size(body), c, v.Name, rps, p50, p99, ratio, delta, tg,
					med(ms, func(m metrics) float64 { return m.envoyUS }))
			}
		}
	}
	return b.String()
}
