package extauthz

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	pmetrics "github.com/tenantgate/tenantgate/internal/metrics"
)

type metrics struct {
	decisions *prometheus.CounterVec   // code, credential
	latency   *prometheus.HistogramVec // result
	service   *prometheus.CounterVec   // principal, code
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "extauthz", Name: "decisions_total",
			Help: "ext_authz decisions by result code (ok or the denial code) and credential kind.",
		}, []string{"code", "credential"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "tenantgate", Subsystem: "extauthz", Name: "check_duration_seconds",
			Help:    "Time to decide one ext_authz Check, by result (allowed, denied, unavailable).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .2, .5, 1},
		}, []string{"result"}),
		service: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "extauthz", Name: "service_decisions_total",
			Help: "Decisions for trusted service callers by principal and result code.",
		}, []string{"principal", "code"}),
	}
	// A Server rebuilt by a configuration reload counts on the collectors
	// of the one it replaces.
	var err error
	if m.decisions, err = pmetrics.Register(reg, m.decisions); err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	if m.latency, err = pmetrics.Register(reg, m.latency); err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	if m.service, err = pmetrics.Register(reg, m.service); err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	return m, nil
}
