// Package validate owns the syntax checks tenantgate applies to identifiers
// before they reach a store: UUIDs, IAM role ARNs, STS external IDs, AWS
// regions and platform API key parts. Checking first keeps malformed input
// from turning into database errors that look like an outage.
package validate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tenantgate/tenantgate/internal/tenant"
)

var (
	uuidRe       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	roleARNRe    = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)
	externalIDRe = regexp.MustCompile(`^[A-Za-z0-9+=,.@:/_-]+$`)
	regionRe     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	publicKeyRe  = regexp.MustCompile(`^pk_[A-Za-z0-9]{32}$`)
	secretKeyRe  = regexp.MustCompile(`^sk_[A-Za-z0-9]{32}$`)
	hexHashRe    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// profileModelRe is a model id that a route may map to a profile.
	profileModelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$`)
	// appProfileARNRe is an application inference profile ARN.
	appProfileARNRe = regexp.MustCompile(`^arn:aws(-[a-z]+)*:bedrock:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:application-inference-profile/[A-Za-z0-9]{1,64}$`)
)

// MaxInferenceProfiles bounds the model ids one route may map.
const MaxInferenceProfiles = 100

// ApplicationProfileARN reports whether s is a Bedrock
// application-inference-profile ARN.
func ApplicationProfileARN(s string) bool { return appProfileARNRe.MatchString(s) }

// InferenceProfiles returns why a route's model id -> application inference
// profile map cannot be used, or nil: at most MaxInferenceProfiles entries,
// model ids of letters, digits and ._:- (at most 256), values
// application-inference-profile ARNs, each mapped from one model id only.
func InferenceProfiles(m map[string]string) error {
	if len(m) > MaxInferenceProfiles {
		return fmt.Errorf("inference_profiles: at most %d entries", MaxInferenceProfiles)
	}
	seen := make(map[string]string, len(m))
	for model, arn := range m {
		if !profileModelRe.MatchString(model) {
			return fmt.Errorf("inference_profiles: %q is not a model id", model)
		}
		if !ApplicationProfileARN(arn) {
			return fmt.Errorf("inference_profiles[%s]: %q is not an application-inference-profile ARN", model, arn)
		}
		if other, dup := seen[arn]; dup {
			return fmt.Errorf("inference_profiles: %s is mapped from both %s and %s", arn, min(model, other), max(model, other))
		}
		seen[arn] = model
	}
	return nil
}

// UUID reports whether s is a UUID in the canonical 8-4-4-4-12 form.
func UUID(s string) bool { return uuidRe.MatchString(s) }

// NormalizeUUID returns s in lowercase and whether it is a UUID.
func NormalizeUUID(s string) (string, bool) {
	if !UUID(s) {
		return "", false
	}
	return strings.ToLower(s), true
}

// RoleARN reports whether s looks like an IAM role ARN (any AWS partition).
// The database enforces the same pattern.
func RoleARN(s string) bool { return roleARNRe.MatchString(s) }

// RoleAccount returns the AWS account id of an IAM role ARN, "" when s is
// not one.
func RoleAccount(s string) string {
	if !RoleARN(s) {
		return ""
	}
	return strings.SplitN(s, ":", 6)[4]
}

// ExternalID reports whether s is a valid STS ExternalId.
func ExternalID(s string) bool {
	return len(s) >= 2 && len(s) <= 1224 && externalIDRe.MatchString(s)
}

// Route returns why a routing row cannot be used to assume the tenant's
// role, or nil. It requires an IAM role ARN, an ExternalId (AWS's
// confused-deputy guidance: a tenant's role trusts the platform only with its
// own sts:ExternalId, so tenantgate never assumes a role without one) and, when
// set, a region. Enabled or not, the same rules apply. Errors name the role
// ARN and region but never the ExternalId.
func Route(r tenant.Route) error {
	if !RoleARN(r.RoleARN) {
		return fmt.Errorf("role_arn %q is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)", r.RoleARN)
	}
	if r.ExternalID == "" {
		return errors.New("external_id is required (the tenant's role must require it as sts:ExternalId)")
	}
	if !ExternalID(r.ExternalID) {
		return errors.New("external_id must be 2-1224 characters of letters, digits and +=,.@:/_-")
	}
	if r.Region != "" && !Region(r.Region) {
		return fmt.Errorf("region %q is not an AWS region", r.Region)
	}
	return InferenceProfiles(r.InferenceProfiles)
}

// Region reports whether s looks like an AWS region name.
func Region(s string) bool { return regionRe.MatchString(s) }

// PublicKey reports whether s is a platform API key public part: pk_ and
// exactly 32 alphanumerics.
func PublicKey(s string) bool { return publicKeyRe.MatchString(s) }

// SecretKey reports whether s is a platform API key secret part: sk_ and
// exactly 32 alphanumerics.
func SecretKey(s string) bool { return secretKeyRe.MatchString(s) }

// SecretHash reports whether s is a lowercase hex HMAC-SHA256.
func SecretHash(s string) bool { return hexHashRe.MatchString(s) }

// LookupText reports whether s can be sent to PostgreSQL as a text lookup
// key: non-empty, at most max bytes, valid UTF-8 and free of NUL bytes.
func LookupText(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
