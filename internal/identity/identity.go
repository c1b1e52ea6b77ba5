// Package identity owns the contract between ext_authz and ext_proc: the
// verified identity of a request, the header names it travels under, and its
// encoding as Envoy dynamic metadata.
package identity

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"
)

// MetadataNamespace is where Envoy files the dynamic metadata returned by the
// ext_authz filter, and therefore the namespace ext_proc must be configured to
// receive through metadata_options.forwarding_namespaces.
const MetadataNamespace = "envoy.filters.http.ext_authz"

// Header names set by ext_authz on allowed requests. Whatever a client sent
// under these names is overwritten.
const (
	HeaderAccountID  = "x-account-id"
	HeaderTier       = "x-account-tier"
	HeaderRole       = "x-account-role"
	HeaderEnterprise = "x-enterprise"
	HeaderUserID     = "x-user-id"
)

// Headers lists every identity header name, for stripping and overwriting.
var Headers = []string{HeaderAccountID, HeaderTier, HeaderRole, HeaderEnterprise, HeaderUserID}

// Dynamic metadata keys (values are strings, except enterprise which is a bool).
const (
	KeyAccountID  = "account_id"
	KeyTier       = "tier"
	KeyRole       = "role"
	KeyEnterprise = "enterprise"
	KeyUserID     = "user_id"
	KeyPrincipal  = "principal_kind" // "user" or "service"
	KeyCredential = "credential"     // "jwt", "api_key", "query_token", "mtls", "service_role"
	KeyAPIKeyID   = "api_key_id"     // the api_keys.key_id that authenticated the request, if any
)

// Principal kinds.
const (
	PrincipalUser    = "user"
	PrincipalService = "service"
)

// ServiceUserPrefix marks x-user-id values that name a service principal.
const ServiceUserPrefix = "service:"

// Identity is the verified identity of one request.
type Identity struct {
	AccountID  string
	UserID     string // a user id, or ServiceUserPrefix+principal for services
	Tier       string
	Role       string // "owner", "member" or "service"
	Enterprise bool
	Principal  string // PrincipalUser or PrincipalService
	Credential string
	// APIKeyID is the key_id of the API key that authenticated the request
	// (not a secret); empty for other credentials.
	APIKeyID string
}

// ErrNoTenant reports that no account id was present.
var ErrNoTenant = errors.New("identity: no tenant account id")

// HeaderValues returns the identity as the header map ext_authz sets.
func (id Identity) HeaderValues() map[string]string {
	return map[string]string{
		HeaderAccountID:  id.AccountID,
		HeaderTier:       id.Tier,
		HeaderRole:       id.Role,
		HeaderEnterprise: strconv.FormatBool(id.Enterprise),
		HeaderUserID:     id.UserID,
	}
}

// Struct returns the identity as ext_authz dynamic metadata.
func (id Identity) Struct() *structpb.Struct {
	principal := id.Principal
	if principal == "" {
		principal = PrincipalUser
	}
	s := &structpb.Struct{Fields: map[string]*structpb.Value{
		KeyAccountID:  structpb.NewStringValue(id.AccountID),
		KeyTier:       structpb.NewStringValue(id.Tier),
		KeyRole:       structpb.NewStringValue(id.Role),
		KeyEnterprise: structpb.NewBoolValue(id.Enterprise),
		KeyUserID:     structpb.NewStringValue(id.UserID),
		KeyPrincipal:  structpb.NewStringValue(principal),
		KeyCredential: structpb.NewStringValue(id.Credential),
	}}
	if id.APIKeyID != "" {
		s.Fields[KeyAPIKeyID] = structpb.NewStringValue(id.APIKeyID)
	}
	return s
}

// FromStruct decodes dynamic metadata written by Struct. A missing or empty
// account id yields ErrNoTenant.
func FromStruct(s *structpb.Struct) (Identity, error) {
	if s == nil {
		return Identity{}, ErrNoTenant
	}
	f := s.GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	id := Identity{
		AccountID:  str(KeyAccountID),
		UserID:     str(KeyUserID),
		Tier:       str(KeyTier),
		Role:       str(KeyRole),
		Principal:  str(KeyPrincipal),
		Credential: str(KeyCredential),
		APIKeyID:   str(KeyAPIKeyID),
	}
	switch v := f[KeyEnterprise].GetKind().(type) {
	case *structpb.Value_BoolValue:
		id.Enterprise = v.BoolValue
	case *structpb.Value_StringValue:
		b, err := strconv.ParseBool(v.StringValue)
		if err != nil {
			return Identity{}, fmt.Errorf("identity: metadata %q: %w", KeyEnterprise, err)
		}
		id.Enterprise = b
	}
	if id.AccountID == "" {
		return Identity{}, ErrNoTenant
	}
	return id, nil
}

// FromHeaders decodes the identity headers (only for deployments where
// ext_authz runs at another hop and the headers are trusted). get returns the
// value of a lower-case header name.
func FromHeaders(get func(name string) string) (Identity, error) {
	id := Identity{
		AccountID: get(HeaderAccountID),
		UserID:    get(HeaderUserID),
		Tier:      get(HeaderTier),
		Role:      get(HeaderRole),
		Principal: PrincipalUser,
	}
	if v := get(HeaderEnterprise); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Identity{}, fmt.Errorf("identity: header %s: %w", HeaderEnterprise, err)
		}
		id.Enterprise = b
	}
	if len(id.UserID) > len(ServiceUserPrefix) && id.UserID[:len(ServiceUserPrefix)] == ServiceUserPrefix {
		id.Principal = PrincipalService
	}
	if id.AccountID == "" {
		return Identity{}, ErrNoTenant
	}
	return id, nil
}
