package awscreds

import (
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
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

// FuzzSessionTags: whatever the account id and tier, SessionTags either
// refuses or returns tags and a SourceIdentity STS accepts.
func FuzzSessionTags(f *testing.F) {
	f.Add("7c0e9a8e-2f7a-4b43-9d1e-3c1f5b2a8e11", "tier_200_1000")
	f.Add("a", "")
	f.Add("acct", "Pro (2024)!\xff")
	f.Add("0,", "") // valid SourceIdentity, refused tag value
	sourceIdentity := regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	tagValue := regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	f.Fuzz(func(t *testing.T, account, tier string) {
		tags, si, err := SessionTags(account, tier)
		if err != nil {
			return
		}
		if !sourceIdentity.MatchString(si) || si != account {
			t.Fatalf("SourceIdentity %q for account %q", si, account)
		}
		for _, tg := range tags {
			v := aws.ToString(tg.Value)
			if !tagValue.MatchString(v) || utf8.RuneCountInString(v) > 256 || !utf8.ValidString(v) {
				t.Fatalf("tag %s value %q", aws.ToString(tg.Key), v)
			}
		}
	})
}
