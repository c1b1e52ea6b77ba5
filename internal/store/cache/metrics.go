package cache

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/metrics"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// Metrics are the cache and store collectors. A nil *Metrics records nothing.
type Metrics struct {
	hits           *prometheus.CounterVec
	misses         *prometheus.CounterVec
	invalidations  *prometheus.CounterVec
	queryDuration  *prometheus.HistogramVec
	queryErrors    *prometheus.CounterVec
	limitedLookups *prometheus.CounterVec
	staleAnswers   *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg (which may be
// nil). Collectors already registered by an earlier call are reused.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "store", Name: "cache_hits_total",
			Help: "Store lookups answered from the in-process cache, by lookup kind.",
		}, []string{"kind"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "store", Name: "cache_misses_total",
			Help: "Store lookups not answered from the in-process cache, by lookup kind.",
		}, []string{"kind"}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "store", Name: "cache_invalidations_total",
			Help: "Cache invalidations, by table (or flush).",
		}, []string{"table"}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "tenantgate", Subsystem: "store", Name: "query_duration_seconds",
			Help:    "Latency of store queries (cache misses), by lookup kind.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"kind"}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "store", Name: "query_errors_total",
			Help: "Store queries that failed (not counting not-found), by lookup kind.",
		}, []string{"kind"}),
		limitedLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "store", Name: "lookups_limited_total",
			Help: "Store lookups refused without a query by the unknown-key rate limit, by lookup kind.",
		}, []string{"kind"}),
		staleAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tenantgate", Subsystem: "store", Name: "stale_answers_total",
			Help: "Lookups answered with an entry past its cache TTL because the store was unreachable (store.stale_if_error), by lookup kind.",
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.hits, err = register(reg, m.hits); err != nil {
		return nil, err
	}
	if m.misses, err = register(reg, m.misses); err != nil {
		return nil, err
	}
	if m.invalidations, err = register(reg, m.invalidations); err != nil {
		return nil, err
	}
	if m.queryDuration, err = register(reg, m.queryDuration); err != nil {
		return nil, err
	}
	if m.queryErrors, err = register(reg, m.queryErrors); err != nil {
		return nil, err
	}
	if m.limitedLookups, err = register(reg, m.limitedLookups); err != nil {
		return nil, err
	}
	if m.staleAnswers, err = register(reg, m.staleAnswers); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	c, err := metrics.Register(reg, c)
	if err != nil {
		return c, fmt.Errorf("store: %w", err)
	}
	return c, nil
}

func (m *Metrics) hit(kind string) {
	if m != nil {
		m.hits.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) miss(kind string) {
	if m != nil {
		m.misses.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) limited(kind string) {
	if m != nil {
		m.limitedLookups.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) staleAnswer(kind string) {
	if m != nil {
		m.staleAnswers.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) invalidated(table string) {
	if m != nil {
		m.invalidations.WithLabelValues(table).Inc()
	}
}

func (m *Metrics) observe(kind string, start, end time.Time, err error) {
	if m == nil {
		return
	}
	m.queryDuration.WithLabelValues(kind).Observe(end.Sub(start).Seconds())
	if err != nil && !errors.Is(err, tenant.ErrNotFound) {
		m.queryErrors.WithLabelValues(kind).Inc()
	}
}
