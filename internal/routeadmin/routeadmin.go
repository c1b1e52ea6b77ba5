// Package routeadmin owns the operator's checks of enterprise Bedrock
// routes (tenantgate routes): whether a row can be used at all (validate.Route)
// and routed by the shipped Envoy configuration (envoy.Regions), and a probe
// that assumes the tenant's role and makes one harmless signed Bedrock call
// before traffic arrives.
package routeadmin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/sigv4sign"
	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// Check returns why r must not be stored, or nil: validate.Route's rules
// (role ARN shape, ExternalId present and well-formed, region syntax) and a
// region the shipped Envoy configuration routes (envoy.Regions); an empty
// region means extproc.default_region, which must be served too.
func Check(r tenant.Route, defaultRegion string) error {
	if err := validate.Route(r); err != nil {
		return err
	}
	region := r.Region
	if region == "" {
		region = defaultRegion
	}
	if region != "" && !Served(region) {
		return fmt.Errorf("region %q is not routed by the shipped Envoy configuration (envoy/envoy.yaml serves %s)",
			region, strings.Join(envoy.Regions, ", "))
	}
	return nil
}

// Served reports whether the shipped Envoy configuration routes region.
func Served(region string) bool { return slices.Contains(envoy.Regions, region) }

// Credentials assumes a tenant's role (an *awscreds.Cache in production).
type Credentials interface {
	Credentials(ctx context.Context, route tenant.Route, region string) (aws.Credentials, error)
}

// ProbeOptions configure Probe.
type ProbeOptions struct {
	// ExtProc supplies the default region, the control-plane host template
	// and the signing name, as ext_proc uses them.
	ExtProc config.ExtProc
	// Creds assumes the tenant's role (errors wrap awscreds.ErrRoleDenied
	// or awscreds.ErrUnavailable).
	Creds Credentials
	// Endpoint, when set, is the base URL the signed call is sent to
	// (AWS_ENDPOINT_URL_BEDROCK); the Host header and the signature still
	// name the real control-plane host, as Envoy sends them.
	Endpoint string
	// RootCAs verify the endpoint's certificate (nil: the system's roots).
	// The certificate must name the real control-plane host.
	RootCAs *x509.CertPool
	Now     func() time.Time
}

// ProbeResult is what a successful probe saw.
type ProbeResult struct {
	Region     string `json:"region"`
	RoleAcct   string `json:"role_aws_account_id"`
	Host       string `json:"host"`
	Operation  string `json:"operation"`
	HTTPStatus int    `json:"http_status"`
}

// ErrProbe wraps every failed step of Probe.
var ErrProbe = errors.New("route probe failed")

// Probe assumes route's role with its ExternalId through STS and sends
// ListFoundationModels (a read of public model metadata) signed with the
// temporary credentials to the route's region. It fails unless both work.
func Probe(ctx context.Context, route tenant.Route, o ProbeOptions) (ProbeResult, error) {
	region := route.Region
	if region == "" {
		region = o.ExtProc.DefaultRegion
	}
	res := ProbeResult{Region: region, RoleAcct: validate.RoleAccount(route.RoleARN), Operation: "ListFoundationModels"}
	if err := Check(route, o.ExtProc.DefaultRegion); err != nil {
		return res, fmt.Errorf("%w: %v", ErrProbe, err)
	}
	if o.Creds == nil {
		return res, fmt.Errorf("%w: no STS client", ErrProbe)
	}
	creds, err := o.Creds.Credentials(ctx, route, region)
	if err != nil {
		return res, fmt.Errorf("%w: assume role: %v", ErrProbe, err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	res.Host = o.ExtProc.ControlHost(region)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs, ServerName: res.Host}
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	defer tr.CloseIdleConnections()
	const path = "/foundation-models"
	signed, err := sigv4sign.New(o.ExtProc.SigningName).Sign(ctx, creds, region, sigv4sign.Request{
		Method: http.MethodGet, Host: res.Host, Path: path, Header: map[string][]string{},
	}, now())
	if err != nil {
		return res, fmt.Errorf("%w: sign: %v", ErrProbe, err)
	}
	base := "https://" + res.Host
	if o.Endpoint != "" {
		base = strings.TrimSuffix(o.Endpoint, "/")
	}
	u, err := url.Parse(base + path)
	if err != nil {
		return res, fmt.Errorf("%w: endpoint: %v", ErrProbe, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrProbe, err)
	}
	req.Host = res.Host
	req.Header.Set(sigv4sign.HeaderAuthorization, signed.Authorization)
	req.Header.Set(sigv4sign.HeaderAmzDate, signed.AmzDate)
	if signed.SecurityToken != "" {
		req.Header.Set(sigv4sign.HeaderSecurityToken, signed.SecurityToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return res, fmt.Errorf("%w: %s %s: %v", ErrProbe, res.Operation, res.Host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	res.HTTPStatus = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("%w: %s in %s answered HTTP %d: %s", ErrProbe, res.Operation, region, resp.StatusCode, oneLine(body))
	}
	return res, nil
}

func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
