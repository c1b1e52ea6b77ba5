// Package tenant owns the data model tenantgate reads: basejump accounts and
// memberships, the plan tier of credit_accounts, platform API keys and the
// enterprise_bedrock_routing rows. It holds types only; stores implement the
// lookups that consumers declare.
package tenant

import (
	"errors"
	"time"
)

// ErrNotFound is returned by stores when the requested row does not exist.
// Any other store error means the store is unavailable.
var ErrNotFound = errors.New("tenant: not found")

// Account is a row of basejump.accounts.
type Account struct {
	ID                 string
	PrimaryOwnerUserID string
	Personal           bool
	Name               string
	Slug               string
}

// Role is basejump.account_role.
type Role string

// Roles of basejump.account_user.
const (
	RoleOwner  Role = "owner"
	RoleMember Role = "member"
)

// NoTier is the tier of an account without a credit_accounts row.
const NoTier = "none"

// Plan is the billing state of an account (credit_accounts).
type Plan struct {
	Tier        string
	TrialStatus string
	// Balance is credit_accounts.balance; nil when the column is NULL or the
	// row is missing.
	Balance *float64
}

// API key statuses.
const (
	KeyActive  = "active"
	KeyRevoked = "revoked"
	KeyExpired = "expired"
)

// APIKey is a row of api_keys.
type APIKey struct {
	KeyID         string
	PublicKey     string
	SecretKeyHash string // lowercase hex HMAC-SHA256(API_KEY_SECRET, sk_...)
	AccountID     string
	Title         string
	Status        string
	ExpiresAt     *time.Time
	LastUsedAt    *time.Time
}

// Route is a row of enterprise_bedrock_routing.
type Route struct {
	AccountID  string
	RoleARN    string
	ExternalID string
	Region     string // empty means the configured default region
	Enabled    bool
	UpdatedAt  time.Time
	// InferenceProfiles maps model ids the tenant calls to its own
	// application-inference-profile ARNs (nil: none). A request naming
	// such a model id is sent to the profile instead, and the profiles are
	// refused for every other tenant.
	InferenceProfiles map[string]string
	// Tier is the account's plan tier at the time of the request: not a
	// column of the routing row but set by the caller, so that the assumed
	// session carries it as its tier tag.
	Tier string
}
