// Package awscreds owns the temporary AWS credentials of enterprise tenants:
// it assumes each tenant's role through STS (with the tenant's ExternalId,
// the session tags account_id and tier and SourceIdentity = account id, so
// that CloudTrail and cost allocation by IAM principal show the tenant),
// caches the result per (account, role, external id, tier), refreshes it
// before it expires, shares one STS call between concurrent requests and
// caches failures briefly so an STS outage does not turn into a storm of
// calls. With a platform invoker role it hands out per-tenant sessions of
// that role the same way (PlatformCredentials).
package awscreds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// Errors returned (wrapped) by Credentials.
var (
	// ErrRoleDenied means STS refused to let the platform assume the
	// tenant's role (AccessDenied): a wrong trust policy or ExternalId.
	ErrRoleDenied = errors.New("awscreds: tenant role denied")
	// ErrUnavailable means no valid credentials could be obtained (STS
	// unreachable, throttled, timed out, or another failure).
	ErrUnavailable = errors.New("awscreds: tenant credentials unavailable")
)

// validityMargin is how long before expiry cached credentials stop being
// handed out: a request signed now must still be valid when AWS sees it.
const validityMargin = 30 * time.Second

// STSAPI is the part of the STS client the cache uses.
type STSAPI interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Options configures a Cache.
type Options struct {
	Config config.AssumeRole
	// STSForRegion returns the STS client for a region.
	STSForRegion func(region string) STSAPI
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	Now          func() time.Time
	// Rand returns a number in [0,1) used for refresh jitter.
	Rand func() float64
}

// cacheKey names one session. platform marks sessions of the platform's
// own invoker role, which are cached beside the tenant's own role.
type cacheKey struct {
	account, roleARN, externalID, tier string
	platform                           bool
}

func (k cacheKey) String() string {
	return k.account + "\x00" + k.roleARN + "\x00" + k.externalID + "\x00" + k.tier + "\x00" + strconv.FormatBool(k.platform)
}

type entry struct {
	creds     aws.Credentials
	have      bool
	refreshAt time.Time
	failErr   error
	failUntil time.Time
	// refreshing is set while a background refresh runs.
	refreshing bool
}

// Cache hands out tenant credentials. It is safe for concurrent use.
type Cache struct {
	cfg   config.AssumeRole
	sts   func(string) STSAPI
	log   *slog.Logger
	now   func() time.Time
	rand  func() float64
	group singleflight.Group

	mu      sync.Mutex
	entries map[cacheKey]*entry

	stsCalls *prometheus.CounterVec
	lookups  *prometheus.CounterVec
}

// New returns a Cache. Collectors are registered on opts.Registerer when it
// is not nil.
func New(opts Options) *Cache {
	c := &Cache{
		cfg:     opts.Config,
		sts:     opts.STSForRegion,
		log:     opts.Logger,
		now:     opts.Now,
		rand:    opts.Rand,
		entries: map[cacheKey]*entry{},
		stsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_sts_assume_role_calls_total",
			Help: "STS AssumeRole calls for tenant credentials by result (ok, denied, error).",
		}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_tenant_credentials_lookups_total",
			Help: "Tenant credential lookups by cache result (hit, miss, failure_cached).",
		}, []string{"result"}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.stsCalls, c.lookups)
	}
	return c
}

// Credentials returns credentials of route's tenant role, assumed through the
// STS endpoint of region and tagged with route.AccountID and route.Tier.
// Errors wrap ErrRoleDenied or ErrUnavailable.
func (c *Cache) Credentials(ctx context.Context, route tenant.Route, region string) (aws.Credentials, error) {
	if route.Tier == "" {
		route.Tier = tenant.NoTier
	}
	return c.credentials(ctx, cacheKey{route.AccountID, route.RoleARN, route.ExternalID, route.Tier, false}, route, region)
}

// PlatformCredentials returns a session of the platform's own invoker role
// (roleARN, assumed with the platform's base credentials, without an
// ExternalId) for one tenant: tagged and named like a tenant session, cached
// per account exactly like Credentials, so that the platform's traffic
// shows each tenant as its own principal. Errors wrap ErrRoleDenied or
// ErrUnavailable.
func (c *Cache) PlatformCredentials(ctx context.Context, roleARN, accountID, tier, region string) (aws.Credentials, error) {
	if tier == "" {
		tier = tenant.NoTier
	}
	route := tenant.Route{AccountID: accountID, RoleARN: roleARN, Tier: tier, Enabled: true}
	return c.credentials(ctx, cacheKey{accountID, roleARN, "", tier, true}, route, region)
}

func (c *Cache) credentials(ctx context.Context, k cacheKey, route tenant.Route, region string) (aws.Credentials, error) {
	now := c.now()
	c.mu.Lock()
	e := c.entries[k]
	if e != nil && e.have && now.Add(validityMargin).Before(e.creds.Expires) {
		creds := e.creds
		refresh := !e.refreshing && !now.Before(e.refreshAt) && !now.Before(e.failUntil)
		if refresh {
			e.refreshing = true
		}
		c.mu.Unlock()
		if refresh {
			c.refreshInBackground(ctx, k, route, region)
		}
		c.lookups.WithLabelValues("hit").Inc()
		return creds, nil
	}
	if e != nil && e.failErr != nil && now.Before(e.failUntil) {
		err := e.failErr
		c.mu.Unlock()
		c.lookups.WithLabelValues("failure_cached").Inc()
		return aws.Credentials{}, err
	}
	c.mu.Unlock()
	c.lookups.WithLabelValues("miss").Inc()

	ch := c.group.DoChan(k.String(), func() (any, error) {
		return c.fetch(context.WithoutCancel(ctx), k, route, region)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return aws.Credentials{}, r.Err
		}
		return r.Val.(aws.Credentials), nil
	case <-ctx.Done():
		return aws.Credentials{}, fmt.Errorf("%w: account %s: %w", ErrUnavailable, route.AccountID, ctx.Err())
	}
}

// refreshInBackground starts one refresh for k unless one is running; the
// singleflight group joins it with any blocking caller.
func (c *Cache) refreshInBackground(ctx context.Context, k cacheKey, route tenant.Route, region string) {
	bg := context.WithoutCancel(ctx)
	go func() {
		_, _, _ = c.group.Do(k.String(), func() (any, error) {
			return c.fetch(bg, k, route, region)
		})
		c.mu.Lock()
		if e := c.entries[k]; e != nil {
			e.refreshing = false
		}
		c.mu.Unlock()
	}()
}

// fetch calls STS once and records the outcome in the cache.
func (c *Cache) fetch(ctx context.Context, k cacheKey, route tenant.Route, region string) (aws.Credentials, error) {
	// Another flight may have finished between the caller's cache check
	// and this one starting.
	now := c.now()
	c.mu.Lock()
	if e := c.entries[k]; e != nil && e.have && now.Before(e.refreshAt) && now.Add(validityMargin).Before(e.creds.Expires) {
		creds := e.creds
		c.mu.Unlock()
		return creds, nil
	}
	c.mu.Unlock()

	creds, err := c.assume(ctx, k, route, region)
	now = c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		e = &entry{}
		c.entries[k] = e
	}
	if err != nil {
		e.failErr = err
		e.failUntil = now.Add(c.cfg.FailureTTL.D())
		// Still-valid credentials keep being served by Credentials.
		return aws.Credentials{}, err
	}
	e.creds, e.have, e.failErr, e.failUntil = creds, true, nil, time.Time{}
	// A changed routing row (new role or external id) leaves the old
	// entry behind: drop it so the cache stays bounded by the tenants.
	for other := range c.entries {
		if other.account == k.account && other.platform == k.platform && other != k {
			delete(c.entries, other)
		}
	}
	jitter := time.Duration(c.rand() * float64(c.cfg.RefreshJitter.D()))
	e.refreshAt = creds.Expires.Add(-c.cfg.RefreshBefore.D() - jitter)
	return creds, nil
}

func (c *Cache) assume(ctx context.Context, k cacheKey, route tenant.Route, region string) (aws.Credentials, error) {
	// Never ask STS for a tenant's role without its ExternalId (confused
	// deputy), whatever the store let through. The platform's own role is
	// assumed with the platform's credentials and needs none.
	check := validate.Route
	if k.platform {
		check = validatePlatformRole
	}
	if err := check(route); err != nil {
		c.log.ErrorContext(ctx, "routing row unusable; not calling sts", "account_id", route.AccountID, "error", err)
		return aws.Credentials{}, fmt.Errorf("%w: account %s: routing row unusable: %w", ErrUnavailable, route.AccountID, err)
	}
	tags, sourceIdentity, err := SessionTags(route.AccountID, route.Tier)
	if err != nil {
		c.log.ErrorContext(ctx, "session tags unusable; not calling sts", "account_id", route.AccountID, "error", err)
		return aws.Credentials{}, fmt.Errorf("%w: account %s: %w", ErrUnavailable, route.AccountID, err)
	}
	if c.sts == nil {
		return aws.Credentials{}, fmt.Errorf("%w: account %s: no STS client", ErrUnavailable, route.AccountID)
	}
	client := c.sts(region)
	if client == nil {
		return aws.Credentials{}, fmt.Errorf("%w: account %s: no STS client for region %s", ErrUnavailable, route.AccountID, region)
	}
	if t := c.cfg.Timeout.D(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(route.RoleARN),
		RoleSessionName: aws.String(SessionName(c.cfg.SessionNamePrefix, route.AccountID)),
		Tags:            tags,
		SourceIdentity:  aws.String(sourceIdentity),
	}
	if route.ExternalID != "" {
		in.ExternalId = aws.String(route.ExternalID)
	}
	if d := c.cfg.Duration.D(); d > 0 {
		in.DurationSeconds = aws.Int32(int32(d / time.Second))
	}
	start := c.now()
	out, err := client.AssumeRole(ctx, in)
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDenied" {
			c.stsCalls.WithLabelValues("denied").Inc()
			c.log.WarnContext(ctx, "sts assume role denied", "account_id", route.AccountID, "role_arn", route.RoleARN, "region", region)
			return aws.Credentials{}, fmt.Errorf("%w: account %s", ErrRoleDenied, route.AccountID)
		}
		c.stsCalls.WithLabelValues("error").Inc()
		code := "transport"
		if errors.As(err, &apiErr) {
			code = apiErr.ErrorCode()
		} else if ctx.Err() != nil {
			code = "timeout"
		}
		c.log.WarnContext(ctx, "sts assume role failed", "account_id", route.AccountID, "role_arn", route.RoleARN, "region", region, "code", code)
		return aws.Credentials{}, fmt.Errorf("%w: account %s: sts %s", ErrUnavailable, route.AccountID, code)
	}
	if out == nil || out.Credentials == nil || out.Credentials.AccessKeyId == nil || out.Credentials.SecretAccessKey == nil {
		c.stsCalls.WithLabelValues("error").Inc()
		return aws.Credentials{}, fmt.Errorf("%w: account %s: sts returned no credentials", ErrUnavailable, route.AccountID)
	}
	c.stsCalls.WithLabelValues("ok").Inc()
	cr := out.Credentials
	creds := aws.Credentials{
		AccessKeyID:     aws.ToString(cr.AccessKeyId),
		SecretAccessKey: aws.ToString(cr.SecretAccessKey),
		SessionToken:    aws.ToString(cr.SessionToken),
		Source:          "tenantgate-assume-role",
		CanExpire:       true,
	}
	if cr.Expiration != nil {
		creds.Expires = *cr.Expiration
	} else {
		creds.Expires = start.Add(c.cfg.Duration.D())
	}
	c.log.InfoContext(ctx, "assumed tenant role", "account_id", route.AccountID, "role_arn", route.RoleARN, "region", region, "expires", creds.Expires)
	return creds, nil
}

// warmConcurrency bounds parallel STS calls while warming.
const warmConcurrency = 8

// Warm assumes the role of every enabled route, in its region or
// defaultRegion, a few at a time. Failures are logged and cached like any
// other. It returns when all are done or ctx ends.
func (c *Cache) Warm(ctx context.Context, routes []tenant.Route, defaultRegion string) {
	var g errgroup.Group
	g.SetLimit(warmConcurrency)
	for _, r := range routes {
		if !r.Enabled || r.RoleARN == "" {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		region := r.Region
		if region == "" {
			region = defaultRegion
		}
		g.Go(func() error {
			if _, err := c.Credentials(ctx, r, region); err != nil {
				c.log.WarnContext(ctx, "warming tenant credentials failed", "account_id", r.AccountID, "error", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// Session tag keys set on every assumed session.
const (
	TagAccountID = "account_id"
	TagTier      = "tier"
)

var (
	sessionNameBad = regexp.MustCompile(`[^\w+=,.@-]`)
	// sourceIdentityRe is STS's SourceIdentity: [\w+=,.@-], 2-64 characters.
	sourceIdentityRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	// tagValueBad matches what STS refuses in a session tag value
	// ([\p{L}\p{Z}\p{N}_.:/=+\-@]*, at most 256 characters).
	tagValueBad = regexp.MustCompile(`[^\p{L}\p{Z}\p{N}_.:/=+\-@]`)
)

// maxTagValue is STS's limit on a session tag value, in characters.
const maxTagValue = 256

// SessionTags returns the session tags (account_id, tier) and the
// SourceIdentity (the account id) of a tenant's session, made valid for STS:
// the account id must already satisfy the rules of both (it names the
// tenant in CloudTrail, so it is never altered; a tenantgate account id is
// a UUID); the tier has every character STS refuses in a tag value replaced
// by "_" and is cut to 256 characters; an empty tier is tenant.NoTier.
func SessionTags(accountID, tier string) ([]ststypes.Tag, string, error) {
	if !sourceIdentityRe.MatchString(accountID) || tagValueBad.MatchString(accountID) {
		return nil, "", errors.New("account id is not a valid STS SourceIdentity and tag value (letters, digits and _.=+-@, 2-64 characters)")
	}
	if tier == "" {
		tier = tenant.NoTier
	}
	tier = tagValueBad.ReplaceAllString(tier, "_")
	if utf8.RuneCountInString(tier) > maxTagValue {
		tier = string([]rune(tier)[:maxTagValue])
	}
	tags := []ststypes.Tag{
		{Key: aws.String(TagAccountID), Value: aws.String(accountID)},
		{Key: aws.String(TagTier), Value: aws.String(tier)},
	}
	return tags, accountID, nil
}

// validatePlatformRole accepts a platform invoker session: an IAM role ARN
// and, when set, a region; no ExternalId.
func validatePlatformRole(r tenant.Route) error {
	if !validate.RoleARN(r.RoleARN) {
		return fmt.Errorf("platform role_arn %q is not an IAM role ARN", r.RoleARN)
	}
	return nil
}

// SessionName returns prefix+accountID made valid for STS RoleSessionName
// ([\w+=,.@-]{2,64}).
func SessionName(prefix, accountID string) string {
	s := sessionNameBad.ReplaceAllString(prefix+accountID, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	for len(s) < 2 {
		s += "-"
	}
	return s
}

// STSClients returns an STSForRegion function that builds one STS client per
// region from cfg and reuses it.
func STSClients(cfg aws.Config) func(region string) STSAPI {
	var mu sync.Mutex
	clients := map[string]*sts.Client{}
	return func(region string) STSAPI {
		mu.Lock()
		defer mu.Unlock()
		if cl, ok := clients[region]; ok {
			return cl
		}
		cl := sts.NewFromConfig(cfg, func(o *sts.Options) { o.Region = region })
		clients[region] = cl
		return cl
	}
}
