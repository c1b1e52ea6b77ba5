// Command tenantgate runs the tenant-aware ext_authz + ext_proc service that
// sits beside Envoy in front of AWS Bedrock. main only parses flags and
// calls internal/app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/logging"
	"github.com/tenantgate/tenantgate/internal/version"
)

const usage = `tenantgate: tenant-aware ext_authz and ext_proc for Envoy in front of AWS Bedrock

Usage:
  tenantgate serve [--config FILE] [--demo]
        Serve ext_authz, ext_proc and gRPC health (server.grpc_listen, default 127.0.0.1:9191;
        host:port or unix:/path, mutual TLS with server.grpc_tls)
        and /healthz, /readyz, /metrics (server.http_listen, default 127.0.0.1:9192).
        Needs a store: $TENANTGATE_DATABASE_URL (store.database_url) or
        store.tenants_file. --demo (store.demo: true) instead serves the embedded
        public DEMO tenants and their public demo API key; never in production.
  tenantgate migrate [--database-url URL] [--dev]
        Apply the database migrations. URL defaults to $TENANTGATE_DATABASE_URL.
        --dev first creates a minimal basejump/credit_accounts/api_keys schema.
  tenantgate check-config [--config FILE] [--demo] [--offline]
        Validate a configuration (environment applied) as serve would, print it
        with secrets redacted, and warn about a database URL through which
        LISTEN/NOTIFY cannot work (transaction-mode pooler, port 6543) and about
        plan tiers in the store (or enterprise_tiers) that plans.models does not
        list: their accounts are refused. --offline skips reading the store.
  tenantgate routes list|get|set|enable|disable|delete|test [ACCOUNT] [--database-url URL] [--config FILE] [--json]
        Manage tenantgate.enterprise_bedrock_routing. set takes --role-arn, --external-id,
        [--region] and [--disabled] and refuses a malformed role ARN, a missing ExternalId
        and a region the shipped Envoy configuration does not route. The ExternalId is
        never printed. test assumes the account's role with its ExternalId and sends one
        signed ListFoundationModels to its region (AWS endpoints from the SDK's
        environment, AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_BEDROCK; --ca-file).
  tenantgate explain --token T [--account A] --path P [--method M] [--config FILE] [--json]
        Print the decision chain for one request (issuer, key, user, account, membership,
        tier, plan rule, route, identity kind, region, AWS host) from the same decision
        code ext_authz and ext_proc run, without calling AWS. T is a bearer token or an
        API key (pk_...:sk_...); it is never printed.
  tenantgate usage --account ID [--since 24h] [--by model|day] [--database-url URL | --ndjson FILE]
        Print an account's metered usage (requests, tokens, credits) from
        tenantgate.usage_records (URL defaults to $TENANTGATE_DATABASE_URL) or
        from the NDJSON usage file of the tenants-file store.
  tenantgate version
        Print the build version.

Secrets may come from the environment: TENANTGATE_DATABASE_URL,
TENANTGATE_LISTEN_DATABASE_URL, SUPABASE_JWT_SECRET, API_KEY_SECRET,
SUPABASE_ANON_KEY (via auth.issuers[].jwks_headers_env).
`

// errUsage marks command-line mistakes (exit 2).
var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() {
		// After the first signal starts the drain, a second one kills the
		// process the default way.
		<-ctx.Done()
		stop()
	}()
	// SIGHUP reloads the configuration (serve); it never ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reloads := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reloads <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	os.Exit(runWith(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, reloads))
}

// run executes one subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runWith(ctx, args, stdout, stderr, getenv, nil)
}

// runWith is run with the channel on which serve is asked to reload its
// configuration (SIGHUP).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, reloads <-chan struct{}) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr, getenv, reloads)
	case "migrate":
		err = migrate(ctx, args[1:], stderr, getenv)
	case "check-config":
		err = checkConfig(ctx, args[1:], stdout, stderr, getenv)
	case "routes":
		err = routes(ctx, args[1:], stdout, stderr, getenv)
	case "explain":
		err = explain(ctx, args[1:], stdout, stderr, getenv)
	case "usage":
		err = usageReport(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version", "-version":
		if len(args) > 1 {
			err = fmt.Errorf("%w: version takes no arguments", errUsage)
			break
		}
		fmt.Fprintln(stdout, version.Get().String())
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "tenantgate: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "tenantgate: %s\n", oneLine(err))
		return 1
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tenantgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// loadConfig parses the --config and --demo flags that serve and
// check-config share and loads the configuration they name. The store rule
// (a database, a tenants file or an explicit --demo) is config.Store.Kind's.
// loadConfig parses the flags serve and check-config share (plus those extra
// registers), loads the configuration and applies the store rule.
func loadConfig(name string, args []string, stderr io.Writer, getenv func(string) string, extra func(*flag.FlagSet)) (*config.Config, error) {
	cfg, _, err := loadConfigSource(name, args, stderr, getenv, extra)
	return cfg, err
}

// loadConfigSource is loadConfig that also returns where serve re-reads
// the configuration on reload, parsed with the same flags and environment.
func loadConfigSource(name string, args []string, stderr io.Writer, getenv func(string) string, extra func(*flag.FlagSet)) (*config.Config, app.ConfigSource, error) {
	fs := newFlags(name, stderr)
	path := fs.String("config", "", "YAML configuration file (optional: defaults only)")
	demo := fs.Bool("demo", false, "serve the embedded public DEMO tenants and their public demo API key (store.demo: true); never in production")
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, args); err != nil {
		return nil, app.ConfigSource{}, err
	}
	src := app.ConfigSource{Path: *path, Parse: func(data []byte) (*config.Config, error) {
		cfg, err := config.Parse(data, getenv)
		if err != nil {
			return nil, err
		}
		if *demo {
			cfg.Store.Demo = true
		}
		if _, err := cfg.Store.Kind(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return cfg, nil
	}}
	var data []byte
	if *path != "" {
		b, err := os.ReadFile(*path)
		if err != nil {
			return nil, src, fmt.Errorf("config: read %s: %w", *path, err)
		}
		data = b
	}
	cfg, err := src.Parse(data)
	if err != nil {
		return nil, src, err
	}
	return cfg, src, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string, reloads <-chan struct{}) error {
	cfg, src, err := loadConfigSource("serve", args, stderr, getenv, nil)
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, cfg.Server.LogLevel, cfg.Server.LogFormat)
	if err != nil {
		return err
	}
	log.Info("starting", slog.String("version", version.Get().String()))
	a, err := app.New(ctx, cfg, app.Options{Logger: log, Getenv: getenv, Source: src, Reloads: reloads})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func migrate(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("migrate", stderr)
	url := fs.String("database-url", "", "PostgreSQL URL (default $"+config.EnvDatabaseURL+")")
	dev := fs.Bool("dev", false, "also create the minimal basejump/credit_accounts/api_keys development schema")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *url == "" {
		*url = getenv(config.EnvDatabaseURL)
	}
	if *url == "" {
		return fmt.Errorf("%w: migrate needs --database-url or %s", errUsage, config.EnvDatabaseURL)
	}
	log, err := logging.New(stderr, "info", "text")
	if err != nil {
		return err
	}
	if err := app.Migrate(ctx, *url, *dev, log); err != nil {
		return err
	}
	log.Info("migrations applied", slog.Bool("dev_schema", *dev))
	return nil
}

func checkConfig(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var offline *bool
	cfg, err := loadConfig("check-config", args, stderr, getenv, func(fs *flag.FlagSet) {
		offline = fs.Bool("offline", false, "do not read the store (skips the check of the tiers in use)")
	})
	if err != nil {
		return err
	}
	var warnings []string
	if *offline {
		warnings, err = app.CheckTiers(ctx, cfg, nil)
	} else {
		warnings, err = app.CheckTiers(ctx, cfg, app.StoreTiers)
	}
	if err != nil {
		return fmt.Errorf("%w (--offline skips the store)", err)
	}
	out, err := app.EffectiveYAML(cfg)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := cfg.Store.ListenURL(); err != nil {
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *offline {
		fmt.Fprintln(stderr, "note: --offline: the tiers in the store were not checked against plans.models")
	}
	fmt.Fprintf(stderr, "configuration OK (store: %s)\n", app.StoreKind(cfg.Store))
	return nil
}

// oneLine joins a multi-line error (joined validation errors, YAML errors)
// into one line.
func oneLine(err error) string {
	lines := strings.Split(err.Error(), "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
