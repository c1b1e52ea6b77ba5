// Package migrations holds tenantgate's embedded SQL migrations. The core set
// creates tenantgate.enterprise_bedrock_routing (in a schema of its own that
// no Supabase API role can use; earlier releases' public table is moved) and
// the NOTIFY triggers that let tenantgate invalidate its caches; the dev set
// creates a minimal basejump schema, credit_accounts and api_keys (row-level
// security on, API roles revoked) for local development and tests. Every
// statement is idempotent so the sets are safe on a real Supabase database.
// Released files are never edited: a change is a new file.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed core/*.sql dev/*.sql
var files embed.FS

// Migration is one embedded SQL file.
type Migration struct {
	// Name is unique across sets, e.g. "core/0001_enterprise_bedrock_routing.sql".
	Name string
	SQL  string
}

// Core returns the core migrations in the order they must be applied.
func Core() []Migration { return mustSet("core") }

// Dev returns the development schema migrations (basejump, credit_accounts,
// api_keys), applied before Core when requested.
func Dev() []Migration { return mustSet("dev") }

func mustSet(dir string) []Migration {
	ms, err := set(dir)
	if err != nil {
		// Embedded at build time: a failure here is a build defect.
		panic(err)
	}
	return ms
}

func set(dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s: %w", dir, err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(files, dir+"/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Name: dir + "/" + e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
