package usage

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// Report groupings.
const (
	ByModel = "model"
	ByDay   = "day"
)

// ReportRow is one line of a usage report.
type ReportRow struct {
	Key                   string
	Requests              int64
	Input, Output         int64
	CacheRead, CacheWrite int64
	Credits               float64
}

// ReportQuery selects an account's records since a time, grouped.
type ReportQuery struct {
	Account string
	Since   time.Time
	By      string
}

func (q ReportQuery) validate() error {
	if q.Account == "" {
		return fmt.Errorf("usage: report needs an account")
	}
	if q.By != ByModel && q.By != ByDay {
		return fmt.Errorf("usage: report grouping %q is not model or day", q.By)
	}
	return nil
}

// key returns a record's group key.
func (q ReportQuery) key(r Record) string {
	if q.By == ByDay {
		return r.Time.UTC().Format(time.DateOnly)
	}
	return r.Model
}

// ReportPG reads the report from tenantgate.usage_records.
func ReportPG(ctx context.Context, conn *pgx.Conn, q ReportQuery) ([]ReportRow, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	group := "model"
	if q.By == ByDay {
		group = "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
	rows, err := conn.Query(ctx, `SELECT `+group+` AS k, count(*), sum(input_tokens), sum(output_tokens),
		sum(cache_read_tokens), sum(cache_write_tokens), coalesce(sum(cost), 0)::float8
		FROM tenantgate.usage_records WHERE account_id = $1 AND occurred_at >= $2
		GROUP BY k ORDER BY k`, q.Account, q.Since)
	if err != nil {
		return nil, fmt.Errorf("usage: report query: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReportRow, error) {
		var x ReportRow
		err := r.Scan(&x.Key, &x.Requests, &x.Input, &x.Output, &x.CacheRead, &x.CacheWrite, &x.Credits)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("usage: report query: %w", err)
	}
	return out, nil
}

// ReportNDJSON reads the report from an NDJSON sink file (each request id
// counted once).
func ReportNDJSON(path string, q ReportQuery) ([]ReportRow, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("usage: open %s: %w", path, err)
	}
	defer f.Close()
	groups := map[string]*ReportRow{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("usage: %s line %d: %w", path, line, err)
		}
		if r.AccountID != q.Account || r.Time.Before(q.Since) || seen[r.RequestID] {
			continue
		}
		seen[r.RequestID] = true
		k := q.key(r)
		g := groups[k]
		if g == nil {
			g = &ReportRow{Key: k}
			groups[k] = g
		}
		g.Requests++
		g.Input += r.Input
		g.Output += r.Output
		g.CacheRead += r.CacheRead
		g.CacheWrite += r.CacheWrite
		if r.Cost != nil {
			g.Credits += *r.Cost
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("usage: read %s: %w", path, err)
	}
	out := make([]ReportRow, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// PrintReport writes rows as an aligned table with a total line.
func PrintReport(w io.Writer, by string, rows []ReportRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tREQUESTS\tINPUT\tOUTPUT\tCACHE_READ\tCACHE_WRITE\tCREDITS\t\n", map[string]string{ByModel: "MODEL", ByDay: "DAY"}[by])
	var total ReportRow
	total.Key = "TOTAL"
	line := func(r ReportRow) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.Key, r.Requests, r.Input, r.Output, r.CacheRead, r.CacheWrite, strconv.FormatFloat(r.Credits, 'f', 6, 64))
	}
	for _, r := range rows {
		line(r)
		total.Requests += r.Requests
		total.Input += r.Input
		total.Output += r.Output
		total.CacheRead += r.CacheRead
		total.CacheWrite += r.CacheWrite
		total.Credits += r.Credits
	}
	line(total)
	return tw.Flush()
}
