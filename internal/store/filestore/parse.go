package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/internal/store/validate"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// File is the YAML document of a tenants file.
type File struct {
	Accounts []FileAccount `yaml:"accounts"`
}

// FileAccount is one account with its plan, members, route and API keys.
type FileAccount struct {
	ID           string       `yaml:"id"`
	Name         string       `yaml:"name"`
	Slug         string       `yaml:"slug"`
	Personal     bool         `yaml:"personal"`
	PrimaryOwner string       `yaml:"primary_owner"`
	Tier         string       `yaml:"tier"`
	TrialStatus  string       `yaml:"trial_status"`
	Balance      *float64     `yaml:"balance"`
	Members      []FileMember `yaml:"members"`
	Route        *FileRoute   `yaml:"route"`
	APIKeys      []FileAPIKey `yaml:"api_keys"`
}

// FileMember is a basejump.account_user row.
type FileMember struct {
	User string `yaml:"user"`
	Role string `yaml:"role"`
}

// FileRoute is an enterprise_bedrock_routing row. ExternalID is required;
// Enabled defaults to true.
type FileRoute struct {
	RoleARN    string `yaml:"role_arn"`
	ExternalID string `yaml:"external_id"`
	Region     string `yaml:"region"`
	Enabled    *bool  `yaml:"enabled"`
	// InferenceProfiles maps model ids to the tenant's own
	// application-inference-profile ARNs (the inference_profiles column).
	InferenceProfiles map[string]string `yaml:"inference_profiles"`
}

// FileAPIKey is an api_keys row. Status defaults to active.
type FileAPIKey struct {
	KeyID         string     `yaml:"key_id"`
	Title         string     `yaml:"title"`
	PublicKey     string     `yaml:"public_key"`
	SecretKeyHash string     `yaml:"secret_key_hash"`
	Status        string     `yaml:"status"`
	ExpiresAt     *time.Time `yaml:"expires_at"`
}

// maxFileSize bounds a tenants file.
const maxFileSize = 16 << 20

var (
	tierRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	slugRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// snapshot is the validated, indexed content of a tenants file.
type snapshot struct {
	accounts map[string]tenant.Account // by id
	personal map[string]string         // user id -> account id
	members  map[string]tenant.Role    // account id + "\x00" + user id
	plans    map[string]tenant.Plan    // by account id
	keys     map[string]tenant.APIKey  // by public key
	routes   map[string]tenant.Route   // by account id
	keyIDs   map[string]bool
}

func memberKey(accountID, userID string) string { return accountID + "\x00" + userID }

// Parse decodes and strictly validates a tenants file. Errors name the
// offending entry; secret hashes are never echoed.
func Parse(data []byte) (*File, error) {
	f, _, err := parse(data, time.Time{})
	return f, err
}

func parse(data []byte, loadedAt time.Time) (*File, *snapshot, error) {
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("tenants file: larger than %d bytes", maxFileSize)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("tenants file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("tenants file: more than one YAML document")
	}
	s, err := f.index(loadedAt)
	if err != nil {
		return nil, nil, err
	}
	return &f, s, nil
}

func (f *File) index(loadedAt time.Time) (*snapshot, error) {
	s := &snapshot{
		accounts: map[string]tenant.Account{},
		personal: map[string]string{},
		members:  map[string]tenant.Role{},
		plans:    map[string]tenant.Plan{},
		keys:     map[string]tenant.APIKey{},
		routes:   map[string]tenant.Route{},
		keyIDs:   map[string]bool{},
	}
	var errs []error
	bad := func(where string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("tenants file: %s: %s", where, fmt.Sprintf(format, args...)))
	}
	keyIDs := map[string]string{}
	profileOwner := map[string]string{} // inference profile ARN -> account id
	slugs := map[string]string{}
	for i, a := range f.Accounts {
		where := fmt.Sprintf("accounts[%d]", i)
		id, ok := validate.NormalizeUUID(a.ID)
		if !ok {
			bad(where, "id %q is not a UUID", a.ID)
			continue
		}
		where = fmt.Sprintf("accounts[%d] (%s)", i, id)
		if _, dup := s.accounts[id]; dup {
			bad(where, "duplicate account id")
			continue
		}
		owner, ok := validate.NormalizeUUID(a.PrimaryOwner)
		if !ok {
			bad(where, "primary_owner %q is not a UUID", a.PrimaryOwner)
			continue
		}
		if a.Slug != "" {
			if !slugRe.MatchString(a.Slug) {
				bad(where, "slug %q has characters other than letters, digits, _ and -", a.Slug)
			} else if other, dup := slugs[a.Slug]; dup {
				bad(where, "slug %q already used by account %s", a.Slug, other)
			}
			slugs[a.Slug] = id
		}
		if len(a.Name) > 1024 {
			bad(where, "name longer than 1024 bytes")
		}
		s.accounts[id] = tenant.Account{ID: id, PrimaryOwnerUserID: owner, Personal: a.Personal, Name: a.Name, Slug: a.Slug}
		if a.Personal {
			if other, dup := s.personal[owner]; dup {
				bad(where, "user %s already has personal account %s", owner, other)
			}
			s.personal[owner] = id
			if len(a.Members) > 0 {
				bad(where, "a personal account has no members besides its owner")
			}
		}
		// The primary owner is a member with role owner.
		s.members[memberKey(id, owner)] = tenant.RoleOwner
		seen := map[string]bool{}
		for j, m := range a.Members {
			mw := fmt.Sprintf("%s.members[%d]", where, j)
			u, ok := validate.NormalizeUUID(m.User)
			if !ok {
				bad(mw, "user %q is not a UUID", m.User)
				continue
			}
			role := tenant.Role(m.Role)
			if role != tenant.RoleOwner && role != tenant.RoleMember {
				bad(mw, "role %q is not owner or member", m.Role)
				continue
			}
			if seen[u] {
				bad(mw, "user %s listed twice", u)
				continue
			}
			seen[u] = true
			if u == owner && role != tenant.RoleOwner {
				bad(mw, "primary owner %s must have role owner", u)
				continue
			}
			s.members[memberKey(id, u)] = role
		}
		if a.Tier != "" || a.TrialStatus != "" || a.Balance != nil {
			p := tenant.Plan{Tier: a.Tier, TrialStatus: a.TrialStatus}
			if p.Tier == "" {
				p.Tier = tenant.NoTier
			}
			if !tierRe.MatchString(p.Tier) {
				bad(where, "tier %q has characters other than letters, digits, _ . -", a.Tier)
			}
			if len(a.TrialStatus) > 64 {
				bad(where, "trial_status longer than 64 bytes")
			}
			if a.Balance != nil {
				if math.IsNaN(*a.Balance) || math.IsInf(*a.Balance, 0) {
					bad(where, "balance is not a finite number")
				}
				b := *a.Balance
				p.Balance = &b
			}
			s.plans[id] = p
		}
		if r := a.Route; r != nil {
			enabled := true
			if r.Enabled != nil {
				enabled = *r.Enabled
			}
			route := tenant.Route{AccountID: id, RoleARN: r.RoleARN, ExternalID: r.ExternalID, Region: r.Region, Enabled: enabled, UpdatedAt: loadedAt, InferenceProfiles: r.InferenceProfiles}
			if err := validate.Route(route); err != nil {
				bad(where+".route", "%v", err)
			}
			for _, arn := range r.InferenceProfiles {
				if other, dup := profileOwner[arn]; dup && other != id {
					bad(where+".route", "inference profile %s is also bound to account %s", arn, other)
				}
				profileOwner[arn] = id
			}
			s.routes[id] = route
		}
		for j, k := range a.APIKeys {
			kw := fmt.Sprintf("%s.api_keys[%d]", where, j)
			kid, ok := validate.NormalizeUUID(k.KeyID)
			if !ok {
				bad(kw, "key_id %q is not a UUID", k.KeyID)
				continue
			}
			if !validate.PublicKey(k.PublicKey) {
				bad(kw, "public_key must be pk_ followed by exactly 32 letters or digits")
				continue
			}
			if !validate.SecretHash(k.SecretKeyHash) {
				bad(kw, "secret_key_hash must be 64 lowercase hex digits (HMAC-SHA256 of the sk_ secret)")
				continue
			}
			status := k.Status
			if status == "" {
				status = tenant.KeyActive
			}
			if status != tenant.KeyActive && status != tenant.KeyRevoked && status != tenant.KeyExpired {
				bad(kw, "status %q is not active, revoked or expired", k.Status)
				continue
			}
			if other, dup := keyIDs[kid]; dup {
				bad(kw, "key_id %s already used in %s", kid, other)
				continue
			}
			if _, dup := s.keys[k.PublicKey]; dup {
				bad(kw, "public_key %s listed twice", k.PublicKey)
				continue
			}
			keyIDs[kid] = kw
			s.keyIDs[kid] = true
			key := tenant.APIKey{KeyID: kid, PublicKey: k.PublicKey, SecretKeyHash: k.SecretKeyHash, AccountID: id, Title: k.Title, Status: status}
			if k.ExpiresAt != nil {
				t := *k.ExpiresAt
				key.ExpiresAt = &t
			}
			s.keys[k.PublicKey] = key
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// sortedRoutes returns the enabled routes ordered by account id.
func (s *snapshot) sortedRoutes() []tenant.Route {
	out := make([]tenant.Route, 0, len(s.routes))
	for _, r := range s.routes {
		if r.Enabled {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AccountID < out[j].AccountID })
	return out
}
