package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/config"
	metering "github.com/tenantgate/tenantgate/internal/usage"
)

// usageReport implements `tenantgate usage`: an account's metered usage
// since a time, by model or by day, from PostgreSQL or an NDJSON sink file.
func usageReport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("usage", stderr)
	account := fs.String("account", "", "account id (required)")
	since := fs.Duration("since", 24*time.Hour, "how far back to report")
	by := fs.String("by", metering.ByModel, "group by model or day")
	url := fs.String("database-url", "", "PostgreSQL URL (default $"+config.EnvDatabaseURL+")")
	ndjson := fs.String("ndjson", "", "read the NDJSON usage file (usage.ndjson_path) instead of PostgreSQL")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return fmt.Errorf("%w: usage needs --account", errUsage)
	}
	if *since <= 0 {
		return fmt.Errorf("%w: --since must be positive", errUsage)
	}
	if *by != metering.ByModel && *by != metering.ByDay {
		return fmt.Errorf("%w: --by must be model or day", errUsage)
	}
	q := metering.ReportQuery{Account: *account, Since: time.Now().Add(-*since), By: *by}
	var rows []metering.ReportRow
	var err error
	if *ndjson != "" {
		rows, err = metering.ReportNDJSON(*ndjson, q)
	} else {
		if *url == "" {
			*url = getenv(config.EnvDatabaseURL)
		}
		if *url == "" {
			return fmt.Errorf("%w: usage needs --database-url, %s or --ndjson", errUsage, config.EnvDatabaseURL)
		}
		var conn *pgx.Conn
		conn, err = pgx.Connect(ctx, *url)
		if err != nil {
			return fmt.Errorf("usage: connect: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		rows, err = metering.ReportPG(ctx, conn, q)
	}
	if err != nil {
		return err
	}
	return metering.PrintReport(stdout, *by, rows)
}
