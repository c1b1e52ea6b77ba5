package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/routeadmin"
	"github.com/tenantgate/tenantgate/internal/store/pgstore"
	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// envBedrockEndpoint is the AWS SDK's per-service endpoint override, read by
// routes test for its signed Bedrock call.
const envBedrockEndpoint = "AWS_ENDPOINT_URL_BEDROCK"

// routeView is a route as printed: the ExternalId is never shown.
type routeView struct {
	AccountID     string    `json:"account_id"`
	RoleARN       string    `json:"role_arn"`
	RoleAccountID string    `json:"role_aws_account_id"`
	ExternalIDSet bool      `json:"external_id_set"`
	Region        string    `json:"region"`
	Enabled       bool      `json:"enabled"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func viewRoute(r tenant.Route) routeView {
	return routeView{AccountID: r.AccountID, RoleARN: r.RoleARN, RoleAccountID: validate.RoleAccount(r.RoleARN),
		ExternalIDSet: r.ExternalID != "", Region: r.Region, Enabled: r.Enabled, UpdatedAt: r.UpdatedAt.UTC()}
}

// routesCmd holds what every routes subcommand shares.
type routesCmd struct {
	fs         *flag.FlagSet
	url        *string
	configPath *string
	asJSON     *bool
	account    string
}

func newRoutesCmd(name string, stderr io.Writer) *routesCmd {
	fs := newFlags("routes "+name, stderr)
	return &routesCmd{
		fs:         fs,
		url:        fs.String("database-url", "", "PostgreSQL URL (default $"+config.EnvDatabaseURL+", else store.database_url of --config)"),
		configPath: fs.String("config", "", "tenantgate configuration (extproc.default_region, assume_role, endpoint templates)"),
		asJSON:     fs.Bool("json", false, "print JSON instead of a table"),
	}
}

// parse parses args; wantAccount takes the one positional ACCOUNT (before or
// after the flags).
func (c *routesCmd) parse(args []string, wantAccount bool) error {
	if wantAccount && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c.account, args = args[0], args[1:]
	}
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	rest := c.fs.Args()
	if wantAccount && c.account == "" && len(rest) > 0 {
		c.account, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	if wantAccount {
		id, ok := validate.NormalizeUUID(c.account)
		if !ok {
			return fmt.Errorf("%w: %s needs an account id (UUID)", errUsage, c.fs.Name())
		}
		c.account = id
	}
	return nil
}

func (c *routesCmd) config(getenv func(string) string) (*config.Config, error) {
	return config.Load(*c.configPath, getenv)
}

func (c *routesCmd) open(ctx context.Context, cfg *config.Config, getenv func(string) string) (*pgstore.Store, error) {
	url := *c.url
	if url == "" {
		url = getenv(config.EnvDatabaseURL)
	}
	if url == "" {
		url = cfg.Store.DatabaseURL
	}
	if url == "" {
		return nil, fmt.Errorf("%w: routes needs --database-url or %s", errUsage, config.EnvDatabaseURL)
	}
	return pgstore.Open(ctx, url, pgstore.Options{MaxConns: 2, QueryTimeout: cfg.Store.QueryTimeout.D()})
}

func routes(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: routes needs a subcommand: list, get, set, enable, disable, delete, test", errUsage)
	}
	sub, args := args[0], args[1:]
	c := newRoutesCmd(sub, stderr)
	var roleARN, externalID, region *string
	var disabled *bool
	switch sub {
	case "list":
	case "get", "enable", "disable", "delete", "test":
	case "set":
		roleARN = c.fs.String("role-arn", "", "IAM role ARN in the tenant's AWS account (required)")
		externalID = c.fs.String("external-id", "", "sts:ExternalId the tenant's role requires (required; never printed)")
		region = c.fs.String("region", "", "Bedrock region (default: extproc.default_region); must be routed by the shipped Envoy configuration")
		disabled = c.fs.Bool("disabled", false, "store the route disabled")
	default:
		return fmt.Errorf("%w: unknown routes subcommand %q", errUsage, sub)
	}
	var caFile *string
	if sub == "test" {
		caFile = c.fs.String("ca-file", "", "PEM roots for the Bedrock endpoint (default: the system's)")
	}
	if err := c.parse(args, sub != "list"); err != nil {
		return err
	}
	cfg, err := c.config(getenv)
	if err != nil {
		return err
	}
	st, err := c.open(ctx, cfg, getenv)
	if err != nil {
		return err
	}
	defer st.Close()

	switch sub {
	case "list":
		rs, err := st.AllRoutes(ctx)
		if err != nil {
			return err
		}
		return c.print(stdout, rs...)
	case "get":
		r, err := st.Route(ctx, c.account)
		if err != nil {
			return routeErr(c.account, err)
		}
		return c.print(stdout, r)
	case "set":
		r := tenant.Route{AccountID: c.account, RoleARN: *roleARN, ExternalID: *externalID, Region: *region, Enabled: !*disabled}
		if err := routeadmin.Check(r, cfg.ExtProc.DefaultRegion); err != nil {
			return fmt.Errorf("route refused: %w", err)
		}
		out, err := st.PutRoute(ctx, r)
		if errors.Is(err, tenant.ErrNotFound) {
			return fmt.Errorf("route refused: account %s does not exist", c.account)
		}
		if err != nil {
			return err
		}
		return c.print(stdout, out)
	case "enable", "disable":
		r, err := st.SetRouteEnabled(ctx, c.account, sub == "enable")
		if err != nil {
			return routeErr(c.account, err)
		}
		return c.print(stdout, r)
	case "delete":
		if err := st.DeleteRoute(ctx, c.account); err != nil {
			return routeErr(c.account, err)
		}
		fmt.Fprintf(stdout, "deleted route of %s\n", c.account)
		return nil
	default: // test
		r, err := st.Route(ctx, c.account)
		if err != nil {
			return routeErr(c.account, err)
		}
		return testRoute(ctx, c, cfg, r, *caFile, stdout, getenv)
	}
}

func routeErr(account string, err error) error {
	if errors.Is(err, tenant.ErrNotFound) {
		return fmt.Errorf("account %s has no route", account)
	}
	return err
}

func testRoute(ctx context.Context, c *routesCmd, cfg *config.Config, r tenant.Route, caFile string, stdout io.Writer, getenv func(string) string) error {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.ExtProc.DefaultRegion))
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	var roots *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca-file %s: no PEM certificate", caFile)
		}
	}
	creds := awscreds.New(awscreds.Options{Config: cfg.ExtProc.AssumeRole, STSForRegion: awscreds.STSClients(awsCfg)})
	res, err := routeadmin.Probe(ctx, r, routeadmin.ProbeOptions{
		ExtProc: cfg.ExtProc, Creds: creds, Endpoint: getenv(envBedrockEndpoint), RootCAs: roots,
	})
	if !r.Enabled && err == nil {
		defer fmt.Fprintln(stdout, "note: the route is disabled; enable it with tenantgate routes enable", r.AccountID)
	}
	if err != nil {
		return err
	}
	if *c.asJSON {
		return writeJSON(stdout, map[string]any{"account_id": r.AccountID, "ok": true, "probe": res})
	}
	fmt.Fprintf(stdout, "OK: assumed %s (AWS account %s) with its ExternalId; %s in %s via %s answered HTTP %d\n",
		r.RoleARN, res.RoleAcct, res.Operation, res.Region, res.Host, res.HTTPStatus)
	return nil
}

func (c *routesCmd) print(w io.Writer, rs ...tenant.Route) error {
	views := make([]routeView, 0, len(rs))
	for _, r := range rs {
		views = append(views, viewRoute(r))
	}
	if *c.asJSON {
		if c.fs.Name() == "tenantgate routes list" {
			return writeJSON(w, views)
		}
		return writeJSON(w, views[0])
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tROLE ARN\tREGION\tENABLED\tEXTERNAL ID\tUPDATED")
	for _, v := range views {
		region := v.Region
		if region == "" {
			region = "(default)"
		}
		ext := "missing"
		if v.ExternalIDSet {
			ext = "set"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\n", v.AccountID, v.RoleARN, region, v.Enabled, ext, v.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
