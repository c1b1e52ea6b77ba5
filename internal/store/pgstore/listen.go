package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/store/validate"
)

// Channel is the NOTIFY channel the migrations' triggers publish on.
const Channel = "tenantgate_invalidate"

// Event is one decoded tenantgate_invalidate notification.
type Event struct {
	Table     string `json:"table"`
	AccountID string `json:"account_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	PublicKey string `json:"public_key,omitempty"`
	All       bool   `json:"all,omitempty"`
}

// maxPayload is PostgreSQL's NOTIFY payload limit.
const maxPayload = 8000

// ParsePayload decodes a notification payload. Identifiers that are not
// well formed are dropped, which makes the event cover the whole table.
func ParsePayload(payload string) (Event, error) {
	if len(payload) > maxPayload {
		return Event{}, errors.New("pgstore: notification payload too large")
	}
	var ev Event
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		return Event{}, fmt.Errorf("pgstore: notification payload: %w", err)
	}
	if ev.Table == "" {
		return Event{}, errors.New("pgstore: notification payload without table")
	}
	if !validate.UUID(ev.AccountID) {
		ev.AccountID = ""
	}
	if !validate.UUID(ev.UserID) {
		ev.UserID = ""
	}
	if !validate.LookupText(ev.PublicKey, maxPublicKeyLen) {
		ev.PublicKey = ""
	}
	return ev, nil
}

// ListenerOptions configures a Listener.
type ListenerOptions struct {
	// OnEvent receives each notification.
	OnEvent func(Event)
	// OnReset is called whenever notifications may have been missed: after
	// every (re)connection once LISTEN is active, when the connection is
	// lost, and for an undecodable payload. Callers drop all cached state.
	OnReset func()
	// OnGap, if set, is called instead of OnReset for the gaps in listening
	// (connection lost, LISTEN active again), when no change is known to have
	// happened, only that one may have been missed; OnReset stays for
	// undecodable payloads, which announce a change. The cache marks entries
	// expired there (asking the store again, serving them stale only while
	// the store is unreachable) rather than dropping them.
	OnGap func()
	// OnListening, if set, is called each time LISTEN becomes active.
	OnListening func()
	// OnDisconnected, if set, is called each time a connection attempt
	// fails or an active connection is lost (LISTEN not active), and on Close.
	OnDisconnected func()
	Logger         *slog.Logger
	// MinBackoff and MaxBackoff bound reconnection delays (100ms, 10s).
	MinBackoff, MaxBackoff time.Duration
	// HealthInterval is how often an idle connection is pinged (30s).
	HealthInterval time.Duration
}

// Listener holds a dedicated connection LISTENing on Channel.
type Listener struct {
	cancel    context.CancelFunc
	done      chan struct{}
	ready     chan struct{}
	readyOnce sync.Once
}

// Ready is closed once LISTEN has been active for the first time.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// StartListener connects in the background and keeps a LISTEN connection
// until Close, reconnecting with exponential backoff.
func StartListener(ctx context.Context, databaseURL string, opts ListenerOptions) (*Listener, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.New("pgstore: database URL is not a valid PostgreSQL connection string")
	}
	cfg.RuntimeParams["application_name"] = "tenantgate-listener"
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = 30 * time.Second
	}
	if opts.OnEvent == nil {
		opts.OnEvent = func(Event) {}
	}
	if opts.OnReset == nil {
		opts.OnReset = func() {}
	}
	if opts.OnGap == nil {
		opts.OnGap = opts.OnReset
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Listener{cancel: cancel, done: make(chan struct{}), ready: make(chan struct{})}
	go l.run(ctx, cfg, opts)
	return l, nil
}

// Close stops listening and waits for the connection to close.
func (l *Listener) Close() {
	l.cancel()
	<-l.done
}

func (l *Listener) run(ctx context.Context, cfg *pgx.ConnConfig, opts ListenerOptions) {
	defer close(l.done)
	log := opts.Logger
	backoff := opts.MinBackoff
	for {
		err := l.session(ctx, cfg, opts, func() { backoff = opts.MinBackoff })
		if opts.OnDisconnected != nil {
			opts.OnDisconnected()
		}
		if ctx.Err() != nil {
			return
		}
		// Changes made while not listening are unknown.
		opts.OnGap()
		log.WarnContext(ctx, "store invalidation listener disconnected; reconnecting", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > opts.MaxBackoff {
			backoff = opts.MaxBackoff
		}
	}
}

// session runs one connection until it fails.
func (l *Listener) session(ctx context.Context, cfg *pgx.ConnConfig, opts ListenerOptions, connected func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()
	// Anything cached before LISTEN became active may be stale.
	opts.OnGap()
	if opts.OnListening != nil {
		opts.OnListening()
	}
	l.readyOnce.Do(func() { close(l.ready) })
	opts.Logger.InfoContext(ctx, "store invalidation listener active", "channel", Channel)
	for {
		wctx, cancel := context.WithTimeout(ctx, opts.HealthInterval)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if timedOut && !conn.IsClosed() {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				perr := conn.Ping(pctx)
				pcancel()
				if perr == nil {
					continue
				}
				return fmt.Errorf("health check: %w", perr)
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		ev, err := ParsePayload(n.Payload)
		if err != nil {
			opts.Logger.WarnContext(ctx, "undecodable store invalidation; dropping all cached tenants", "error", err)
			opts.OnReset()
			continue
		}
		opts.OnEvent(ev)
	}
}
