package awscreds

import (
	"regexp"
	"testing"
)

// FuzzSessionName: any prefix and account id yield a name STS accepts.
func FuzzSessionName(f *testing.F) {
	f.Add("tenantgate-", "7c0e9a8e-2f7a-4b43-9d1e-3c1f5b2a8e11")
	f.Add("", "")
	f.Add("ü/", "a b\x00c")
	valid := regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	f.Fuzz(func(t *testing.T, prefix, account string) {
		if got := SessionName(prefix, account); !valid.MatchString(got) {
			t.Fatalf("SessionName(%q, %q) = %q", prefix, account, got)
		}
	})
}
