package config

import (
	"errors"
	"fmt"
	"strings"
)

// Service configures trusted service principals that may act for the
// account named in x-account-id without a user token. Everything is off by
// default.
type Service struct {
	// TrustedPrincipals are mTLS workload identities (URI SANs such as
	// spiffe://cluster.local/ns/agents/sa/worker) verified by Envoy.
	TrustedPrincipals []string `yaml:"trusted_principals"`
	// ServiceRole accepts the Supabase service_role JWT.
	ServiceRole ServiceRole `yaml:"service_role"`
	// APIKeys are platform service API keys: name -> key (or use APIKeysEnv).
	APIKeys map[string]string `yaml:"api_keys"`
	// APIKeysEnv maps a service name to an environment variable holding its key.
	APIKeysEnv map[string]string `yaml:"api_keys_env"`
	// APIKeyHeader names the header carrying a service API key (default x-service-key).
	APIKeyHeader string `yaml:"api_key_header"`
}

// ServiceRole names the Supabase service_role principal. Which projects'
// service_role keys are accepted is set per issuer
// (auth.issuers[].service_role); keys of other projects are refused with
// 401 invalid_token wherever they appear.
type ServiceRole struct {
	// Enabled was the global switch and is removed: true is a configuration
	// error (it accepted one project's key for every configured issuer);
	// set auth.issuers[].service_role instead.
	Enabled bool `yaml:"enabled"`
	// Principal is the name used in x-user-id and metrics (default supabase-service-role).
	Principal string `yaml:"principal"`
}

// ErrServiceRoleEnabledRemoved is the message refusing the removed global
// service.service_role.enabled switch.
const ErrServiceRoleEnabledRemoved = "service.service_role.enabled is no longer supported: it let one project's service_role key act for every issuer; " +
	"set auth.issuers[].service_role: true on the issuer whose key may act (a legacy key, iss \"supabase\", is bound to the issuer by its ref claim: auth.issuers[].project_ref)"

func (s *Service) applyDefaults() {
	if s.APIKeyHeader == "" {
		s.APIKeyHeader = "x-service-key"
	}
	if s.ServiceRole.Principal == "" {
		s.ServiceRole.Principal = "supabase-service-role"
	}
}

func (s *Service) validate() []error {
	var errs []error
	if s.ServiceRole.Enabled {
		errs = append(errs, errors.New(ErrServiceRoleEnabledRemoved))
	}
	for _, p := range s.TrustedPrincipals {
		if p == "" || strings.ContainsAny(p, " \t\r\n") {
			errs = append(errs, fmt.Errorf("service.trusted_principals: invalid principal %q", p))
		}
	}
	for name, key := range s.APIKeys {
		if len(key) < 32 {
			errs = append(errs, fmt.Errorf("service.api_keys.%s: key shorter than 32 characters", name))
		}
	}
	return errs
}
