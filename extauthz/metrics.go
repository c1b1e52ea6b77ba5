package extauthz

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
	for _, c := range []prometheus.Collector{m.decisions, m.latency, m.service} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("extauthz: metrics already registered: %w", err)
			}
			return nil, fmt.Errorf("extauthz: register metrics: %w", err)
		}
	}
	return m, nil
}
