package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink stores batches of records. Writing the same request id twice must
// store it once (records are retried after an error).
type Sink interface {
	Write(ctx context.Context, recs []Record) error
}

// Defaults of Options.
const (
	DefaultQueueSize     = 10000
	DefaultBatchSize     = 200
	DefaultFlushInterval = time.Second
	DefaultModelLabels   = 100
	DefaultTierLabels    = 50
	// DefaultFlushTimeout bounds the final flush on shutdown.
	DefaultFlushTimeout = 10 * time.Second
	// otherLabel replaces label values beyond a cardinality cap.
	otherLabel = "other"
)

// sinkAttempts is how often a batch is tried before it is dropped.
const sinkAttempts = 3

// Options configures a Recorder.
type Options struct {
	// Sink stores records; nil keeps metrics only.
	Sink          Sink
	QueueSize     int
	BatchSize     int
	FlushInterval time.Duration
	FlushTimeout  time.Duration
	// Prices, when non-nil, sets each record's Cost (credits to debit).
	Prices PriceTable
	// AccountLabels > 0 adds per-account token counters for at most that
	// many accounts (later ones count under "other").
	AccountLabels int
	// ModelLabels and TierLabels cap those label values (0: defaults).
	ModelLabels int
	TierLabels  int
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Recorder exports metrics for every record and writes records to its
// sink in batches from one goroutine (Run), never on the request path.
type Recorder struct {
	opts  Options
	queue chan Record
	log   *slog.Logger

	// closeMu orders Record against the end of Run: once closed, records
	// are counted as dropped (reason shutdown) instead of queued unseen.
	closeMu sync.RWMutex
	closed  bool

	models, tiers, accounts *labelCap

	tokens   *prometheus.HistogramVec
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttfb     *prometheus.HistogramVec
	perAcct  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	written  prometheus.Counter
	cost     *prometheus.CounterVec
}

// NewRecorder returns a Recorder; call Run to write records.
func NewRecorder(opts Options) (*Recorder, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = DefaultFlushTimeout
	}
	if opts.ModelLabels <= 0 {
		opts.ModelLabels = DefaultModelLabels
	}
	if opts.TierLabels <= 0 {
		opts.TierLabels = DefaultTierLabels
	}
	r := &Recorder{
		opts:     opts,
		queue:    make(chan Record, opts.QueueSize),
		log:      opts.Logger,
		models:   newLabelCap(opts.ModelLabels),
		tiers:    newLabelCap(opts.TierLabels),
		accounts: newLabelCap(opts.AccountLabels),
		// OpenTelemetry GenAI: gen_ai.client.token.usage (histogram of
		// tokens per request, by gen_ai.token.type).
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgate_gen_ai_client_token_usage",
			Help:    "Tokens per Bedrock request as AWS reported them (OpenTelemetry gen_ai.client.token.usage), by tier, model, operation and token type (input, output, cache_read, cache_write).",
			Buckets: []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864},
		}, []string{"tier", "gen_ai_request_model", "gen_ai_operation_name", "gen_ai_token_type"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_usage_requests_total",
			Help: "Metered Bedrock requests by tier, model, operation and outcome (2xx, 4xx, 5xx, cut).",
		}, []string{"tier", "gen_ai_request_model", "gen_ai_operation_name", "outcome"}),
		// OpenTelemetry GenAI: gen_ai.client.operation.duration.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgate_gen_ai_client_operation_duration_seconds",
			Help:    "Time from the signed request leaving for AWS to the end of the response (OpenTelemetry gen_ai.client.operation.duration), by tier, model and operation.",
			Buckets: []float64{.01, .02, .04, .08, .16, .32, .64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92},
		}, []string{"tier", "gen_ai_request_model", "gen_ai_operation_name"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgate_usage_time_to_first_byte_seconds",
			Help:    "Time from the signed request leaving for AWS to the first byte of the response body, by tier, model and operation.",
			Buckets: []float64{.01, .02, .04, .08, .16, .32, .64, 1.28, 2.56, 5.12, 10.24},
		}, []string{"tier", "gen_ai_request_model", "gen_ai_operation_name"}),
		perAcct: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_usage_account_tokens_total",
			Help: "Tokens by account and token type (usage.metrics.account_labels > 0; accounts beyond that many count as other).",
		}, []string{"account", "gen_ai_token_type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_usage_records_dropped_total",
			Help: "Usage records not stored, by reason (queue_full, sink_error, shutdown).",
		}, []string{"reason"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_usage_records_written_total",
			Help: "Usage records handed to the sink successfully (duplicates by request id are stored once).",
		}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_usage_credits_total",
			Help: "Credits charged by the price table, by tier and model.",
		}, []string{"tier", "gen_ai_request_model"}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, reason := range []string{"queue_full", "sink_error", "shutdown"} {
		r.dropped.WithLabelValues(reason)
	}
	if opts.Registerer != nil {
		cs := []prometheus.Collector{r.tokens, r.requests, r.duration, r.ttfb, r.dropped, r.written, r.cost}
		if opts.AccountLabels > 0 {
			cs = append(cs, r.perAcct)
		}
		for _, c := range cs {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("usage: register metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Record exports rec's metrics and queues it for the sink without
// blocking; a full queue drops it (counted).
func (r *Recorder) Record(rec Record) {
	if r.opts.Prices != nil {
		if c, ok := r.opts.Prices.Cost(rec); ok {
			rec.Cost = &c
		}
	}
	r.observe(rec)
	if r.opts.Sink == nil {
		return
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		r.dropped.WithLabelValues("shutdown").Inc()
		return
	}
	select {
	case r.queue <- rec:
	default:
		r.dropped.WithLabelValues("queue_full").Inc()
	}
}

func (r *Recorder) observe(rec Record) {
	tier, model, op := r.tiers.get(rec.Tier), r.models.get(rec.Model), rec.Operation
	outcome := "cut"
	if rec.Complete {
		outcome = strconv.Itoa(rec.Status/100) + "xx"
	}
	r.requests.WithLabelValues(tier, model, op, outcome).Inc()
	if rec.LatencyMS > 0 {
		r.duration.WithLabelValues(tier, model, op).Observe(rec.LatencyMS / 1000)
	}
	if rec.TTFBMS > 0 {
		r.ttfb.WithLabelValues(tier, model, op).Observe(rec.TTFBMS / 1000)
	}
	if rec.Cost != nil {
		r.cost.WithLabelValues(tier, model).Add(*rec.Cost)
	}
	acct := ""
	if r.opts.AccountLabels > 0 {
		acct = r.accounts.get(rec.AccountID)
	}
	for _, t := range []struct {
		typ string
		n   int64
	}{{"input", rec.Input}, {"output", rec.Output}, {"cache_read", rec.CacheRead}, {"cache_write", rec.CacheWrite}} {
		// A token type the response did not report is not observed, so
		// that the histogram's count is the number of reports.
		cache := t.typ == "cache_read" || t.typ == "cache_write"
		if t.n == 0 && (cache || !rec.FinalUsage) {
			continue
		}
		r.tokens.WithLabelValues(tier, model, op, t.typ).Observe(float64(t.n))
		if acct != "" {
			r.perAcct.WithLabelValues(acct, t.typ).Add(float64(t.n))
		}
	}
}

// Run writes queued records in batches until ctx ends, then flushes what
// is queued (bounded by FlushTimeout) and returns. The owner starts it once
// and waits for it on shutdown, after the producers have stopped.
func (r *Recorder) Run(ctx context.Context) error {
	if r.opts.Sink == nil {
		<-ctx.Done()
		return nil
	}
	// Writes are not cut short by shutdown itself: they may run until
	// FlushTimeout after ctx ends, the final flush included.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	go func() {
		select {
		case <-ctx.Done():
			d := time.NewTimer(r.opts.FlushTimeout)
			defer d.Stop()
			select {
			case <-d.C:
				wcancel()
			case <-wctx.Done():
			}
		case <-wctx.Done():
		}
	}()
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	batch := make([]Record, 0, r.opts.BatchSize)
	flush := func() {
		if len(batch) > 0 {
			r.write(wctx, batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case rec := <-r.queue:
			batch = append(batch, rec)
			if len(batch) >= r.opts.BatchSize {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			r.closeMu.Lock()
			r.closed = true
			r.closeMu.Unlock()
			for {
				select {
				case rec := <-r.queue:
					batch = append(batch, rec)
					if len(batch) >= r.opts.BatchSize {
						flush()
					}
					continue
				default:
				}
				break
			}
			flush()
			return nil
		}
	}
}

func (r *Recorder) write(ctx context.Context, batch []Record) {
	var err error
	for attempt := range sinkAttempts {
		if err = r.opts.Sink.Write(ctx, batch); err == nil {
			r.written.Add(float64(len(batch)))
			return
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	reason := "sink_error"
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		reason = "shutdown"
	}
	r.dropped.WithLabelValues(reason).Add(float64(len(batch)))
	r.log.Error("usage records dropped", "count", len(batch), "reason", reason, "error", err)
}

// labelCap admits at most n distinct label values; later ones map to
// otherLabel. Empty values map to "none".
type labelCap struct {
	mu   sync.Mutex
	n    int
	seen map[string]struct{}
}

func newLabelCap(n int) *labelCap { return &labelCap{n: n, seen: map[string]struct{}{}} }

func (c *labelCap) get(v string) string {
	if v == "" {
		return "none"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) >= c.n {
		return otherLabel
	}
	c.seen[v] = struct{}{}
	return v
}
