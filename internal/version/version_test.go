package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/tenantgate/tenantgate", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"},
			{Key: "vcs.time", Value: "2026-11-29T04:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name                string
		v, c, d             string
		bi                  *debug.BuildInfo
		wantV, wantC, wantD string
		wantMod             bool
		wantGo              string
	}{
		{name: "ldflags win", v: "v1.0.0", c: "deadbeef", d: "2026-01-01", bi: bi,
			wantV: "v1.0.0", wantC: "deadbeef", wantD: "2026-01-01", wantMod: true, wantGo: "go1.26.8"},
		{name: "build info fallback", bi: bi,
			wantV: "v0.3.0", wantC: "abc123", wantD: "2026-11-29T04:00:00Z", wantMod: true, wantGo: "go1.26.8"},
		{name: "devel module", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			wantV: "dev", wantC: "unknown", wantD: "unknown"},
		{name: "no build info", wantV: "dev", wantC: "unknown", wantD: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.v, tt.c, tt.d, tt.bi)
			if got.Version != tt.wantV || got.Commit != tt.wantC || got.Date != tt.wantD || got.Modified != tt.wantMod {
				t.Errorf("resolve = %+v", got)
			}
			if tt.wantGo != "" && got.GoVersion != tt.wantGo {
				t.Errorf("go version = %q, want %q", got.GoVersion, tt.wantGo)
			}
			if !strings.HasPrefix(got.String(), "tenantgate "+tt.wantV+" (commit "+tt.wantC) {
				t.Errorf("String() = %q", got.String())
			}
		})
	}
}
