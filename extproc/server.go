// Package extproc owns tenantgate's Envoy ext_proc server for Bedrock runtime
// traffic: it reads the verified tenant that ext_authz attached to the
// request, picks the AWS identity the request must carry upstream (the
// tenant's assumed role for enterprise tenants with a routing row, otherwise
// the platform's own credentials), strips every caller credential and
// re-signs the request with SigV4 for the upstream Bedrock host.
package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/logging"
	"github.com/tenantgate/tenantgate/internal/sigv4sign"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// RouteStore reads enterprise_bedrock_routing rows. tenant.ErrNotFound means
// no row; any other error means the store is unavailable.
type RouteStore interface {
	Route(ctx context.Context, accountID string) (tenant.Route, error)
}

// TenantCredentials returns temporary credentials of a tenant's role.
// Errors wrap awscreds.ErrRoleDenied or awscreds.ErrUnavailable.
type TenantCredentials interface {
	Credentials(ctx context.Context, route tenant.Route, region string) (aws.Credentials, error)
}

// PlatformSessions returns a per-tenant session of the platform's own
// invoker role (extproc.platform_role_arn), tagged with the tenant's account
// and tier. *awscreds.Cache implements it. Errors wrap
// awscreds.ErrRoleDenied or awscreds.ErrUnavailable.
type PlatformSessions interface {
	PlatformCredentials(ctx context.Context, roleARN, accountID, tier, region string) (aws.Credentials, error)
}

// ModelPolicy says whether a plan tier may call a model (a decoded model
// id or ARN). *plan.Catalog implements it; ext_authz asks it the same
// question for the model in the path.
type ModelPolicy interface {
	ModelAllowed(tier, modelID string) bool
}

// noModels allows no model: the policy of a Server built without one.
type noModels struct{}

func (noModels) ModelAllowed(string, string) bool { return false }

// Options configures a Server.
type Options struct {
	Config config.ExtProc
	// Models are the tiers' model rules (a *plan.Catalog), applied to the
	// model a request names in its body (StartAsyncInvoke's modelId); the
	// path's model is checked by ext_authz with the same rules. Nil allows
	// no model in a body.
	Models ModelPolicy
	// StripHeaders are removed from every forwarded request in addition to
	// the built-in list; include the service API key header when it is not
	// x-service-key.
	StripHeaders []string
	// Platform provides the platform's own credentials (the SDK default
	// chain); it is wrapped in an aws.CredentialsCache when it is not one.
	Platform aws.CredentialsProvider
	// PlatformSessions hands out the per-tenant sessions of
	// Config.PlatformRoleARN; required when it is set.
	PlatformSessions PlatformSessions
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	Now              func() time.Time
	// BedrockHeaders decides which x-amzn-bedrock-* request headers each
	// plan tier may send (a *plan.Catalog). Nil allows none: every one is
	// removed before signing.
	BedrockHeaders BedrockHeaderPolicy
	// Observer meters the streams of Envoy's observability-mode ext_proc
	// filter (a *usage.Observer); nil reads and ignores them.
	Observer StreamObserver
}

// StreamObserver consumes one observability-mode ext_proc stream, first
// message included, without answering.
type StreamObserver interface {
	Observe(ctx context.Context, first *extprocv3.ProcessingRequest, recv func() (*extprocv3.ProcessingRequest, error)) error
}

// Server is the ext_proc gRPC service.
type Server struct {
	cfg      config.ExtProc
	strip    []string
	platform aws.CredentialsProvider
	sessions PlatformSessions
	routes   RouteStore
	creds    TenantCredentials
	models   ModelPolicy
	signer   *sigv4sign.Signer
	log      *slog.Logger
	now      func() time.Time

	requests  *prometheus.CounterVec
	signing   *prometheus.HistogramVec
	fallbacks *prometheus.CounterVec

	bedrockHeaders BedrockHeaderPolicy
	headerDrops    *prometheus.CounterVec
	errorBodies    *prometheus.CounterVec
	observer       StreamObserver
}

// New returns a Server. routes and creds are needed only for enterprise
// tenants but must not be nil.
func New(opts Options, routes RouteStore, creds TenantCredentials) (*Server, error) {
	if routes == nil || creds == nil {
		return nil, errors.New("extproc: route store and tenant credentials are required")
	}
	if opts.Platform == nil {
		return nil, errors.New("extproc: platform credentials provider is required")
	}
	cfg := opts.Config
	if cfg.DefaultRegion == "" || !config.ValidRegion(cfg.DefaultRegion) {
		return nil, fmt.Errorf("extproc: default region %q is not a region", cfg.DefaultRegion)
	}
	if cfg.MaxBodyBytes <= 0 {
		return nil, errors.New("extproc: max body bytes must be positive (apply config defaults)")
	}
	if cfg.EndpointTemplate == "" || cfg.SigningName == "" {
		return nil, errors.New("extproc: endpoint template and signing name are required (apply config defaults)")
	}
	switch cfg.AsyncInvoke {
	case config.AsyncInvokeDeny, config.AsyncInvokeTenantOnly, config.AsyncInvokeAllow:
	default:
		return nil, fmt.Errorf("extproc: async_invoke %q is not deny, tenant_only or allow (apply config defaults)", cfg.AsyncInvoke)
	}
	if cfg.PlatformRoleARN != "" && opts.PlatformSessions == nil {
		return nil, errors.New("extproc: platform_role_arn needs a platform session source")
	}
	platform := opts.Platform
	if _, ok := platform.(*aws.CredentialsCache); !ok {
		platform = aws.NewCredentialsCache(platform)
	}
	s := &Server{
		cfg:      cfg,
		strip:    lowerAll(opts.StripHeaders),
		platform: platform,
		sessions: opts.PlatformSessions,
		routes:   routes,
		creds:    creds,
		models:   opts.Models,
		signer:   sigv4sign.New(cfg.SigningName),
		log:      opts.Logger,
		now:      opts.Now,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_extproc_requests_total",
			Help: "Bedrock requests seen by ext_proc by outcome, identity kind (tenant, platform, none) and region.",
		}, []string{"outcome", "kind", "region"}),
		signing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgate_extproc_signing_seconds",
			Help:    "Time to choose credentials and sign a request, by identity kind.",
			Buckets: []float64{.0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_extproc_platform_fallbacks_total",
			Help: "Enterprise tenants' requests signed with the platform's credentials because the tenant has no enabled route (extproc.enterprise_without_route: platform), by reason (no_route, route_disabled).",
		}, []string{"reason"}),
	}
	if s.models == nil {
		s.models = noModels{}
	}
	s.bedrockHeaders = opts.BedrockHeaders
	s.observer = opts.Observer
	if s.bedrockHeaders == nil {
		s.bedrockHeaders = noBedrockHeaders{}
	}
	s.headerDrops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_extproc_bedrock_headers_blocked_total",
		Help: "x-amzn-bedrock-* request headers a plan does not allow, by header name (known names, else other) and action (stripped, rejected).",
	}, []string{"header", "action"})
	s.errorBodies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_extproc_error_bodies_total",
		Help: "Upstream error responses (status >= 400) whose body was checked for AWS account ids and ARNs, by result (scrubbed, replaced, unchanged).",
	}, []string{"result"})
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// Every line logged while handling a request carries its x-request-id,
	// as ext_authz's decision line does.
	s.log = slog.New(logging.RequestIDHandler(s.log.Handler()))
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.requests); err != nil {
			return nil, fmt.Errorf("extproc: register metrics: %w", err)
		}
		for _, c := range []prometheus.Collector{s.signing, s.fallbacks} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("extproc: register metrics: %w", err)
			}
		}
		if err := opts.Registerer.Register(s.errorBodies); err != nil {
			return nil, fmt.Errorf("extproc: register metrics: %w", err)
		}
		if err := opts.Registerer.Register(s.headerDrops); err != nil {
			return nil, fmt.Errorf("extproc: register metrics: %w", err)
		}
	}
	return s, nil
}

// Register adds the ExternalProcessor service to g.
func (s *Server) Register(g *grpc.Server) {
	extprocv3.RegisterExternalProcessorServer(g, s)
}

// Process handles one HTTP request's ext_proc stream.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	st := &streamState{}
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil || status.Code(err) == codes.Canceled {
				return nil
			}
			s.log.WarnContext(logging.WithRequestID(ctx, st.requestID), "ext_proc receive failed", "error", err)
			return fmt.Errorf("extproc: receive: %w", err)
		}
		if req.GetObservabilityMode() {
			return s.observe(ctx, req, stream)
		}
		resp := s.handle(ctx, st, req)
		if err := stream.Send(resp); err != nil {
			if ctx.Err() != nil || status.Code(err) == codes.Canceled {
				return nil
			}
			s.log.WarnContext(logging.WithRequestID(ctx, st.requestID), "ext_proc send failed", "error", err)
			return fmt.Errorf("extproc: send: %w", err)
		}
	}
}

// observe hands an observability-mode stream (the metering filter's) to
// the observer; Envoy ignores any answer on it, so none is sent.
func (s *Server) observe(ctx context.Context, first *extprocv3.ProcessingRequest, stream extprocv3.ExternalProcessor_ProcessServer) error {
	if s.observer != nil {
		return s.observer.Observe(ctx, first, stream.Recv)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return nil
		}
	}
}

func lowerAll(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" {
			out = append(out, toLower(s))
		}
	}
	return out
}
