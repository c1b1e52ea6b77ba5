// Package version owns the build identity of the tenantgate binary: values
// set with -ldflags -X, falling back to the module and VCS information Go
// embeds in the binary.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time: -X github.com/tenantgate/tenantgate/internal/version.Version=v1.2.3
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// Info is the resolved build identity.
type Info struct {
	Version   string
	Commit    string
	Date      string
	Modified  bool
	GoVersion string
}

// Get resolves the build identity from the -ldflags values and, for those
// left empty, the embedded build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, Commit, Date, bi)
}

func resolve(version, commit, date string, bi *debug.BuildInfo) Info {
	in := Info{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
	if bi != nil {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.Date == "" {
					in.Date = s.Value
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.Date == "" {
		in.Date = "unknown"
	}
	return in
}

// String is a one-line description such as
// "tenantgate v1.2.3 (commit abc123, built 2026-01-02T03:04:05Z, go1.26.0)".
func (i Info) String() string {
	commit := i.Commit
	if i.Modified {
		commit += "-dirty"
	}
	return fmt.Sprintf("tenantgate %s (commit %s, built %s, %s)", i.Version, commit, i.Date, i.GoVersion)
}
