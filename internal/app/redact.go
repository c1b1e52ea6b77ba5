package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/store"
)

// RedactedValue replaces every secret in Redact's output.
const RedactedValue = "REDACTED"

// Redact returns a deep copy of cfg with every secret replaced by
// RedactedValue: JWT secrets, the API key HMAC secret, service API keys,
// JWKS request header values and the database passwords.
func Redact(cfg *config.Config) *config.Config {
	c := *cfg
	c.Auth.CredentialOrder = slices.Clone(cfg.Auth.CredentialOrder)
	if c.Auth.APIKeys.Secret != "" {
		c.Auth.APIKeys.Secret = RedactedValue
	}
	c.Auth.Issuers = slices.Clone(cfg.Auth.Issuers)
	for i := range c.Auth.Issuers {
		is := &c.Auth.Issuers[i]
		if is.HS256Secret != "" {
			is.HS256Secret = RedactedValue
		}
		if is.JWKSHeaders != nil {
			h := make(map[string]string, len(is.JWKSHeaders))
			for k := range is.JWKSHeaders {
				h[k] = RedactedValue
			}
			is.JWKSHeaders = h
		}
		is.JWKSHeadersEnv = maps.Clone(is.JWKSHeadersEnv)
		is.Audiences = slices.Clone(is.Audiences)
		is.Algorithms = slices.Clone(is.Algorithms)
	}
	if cfg.Service.APIKeys != nil {
		k := make(map[string]string, len(cfg.Service.APIKeys))
		for name := range cfg.Service.APIKeys {
			k[name] = RedactedValue
		}
		c.Service.APIKeys = k
	}
	c.Service.APIKeysEnv = maps.Clone(cfg.Service.APIKeysEnv)
	c.Service.TrustedPrincipals = slices.Clone(cfg.Service.TrustedPrincipals)
	c.Store.DatabaseURL = RedactURL(cfg.Store.DatabaseURL)
	c.Store.ListenDatabaseURL = RedactURL(cfg.Store.ListenDatabaseURL)
	c.Plans.EnterpriseTiers = slices.Clone(cfg.Plans.EnterpriseTiers)
	c.Plans.DefaultModels = slices.Clone(cfg.Plans.DefaultModels)
	if cfg.Plans.Models != nil {
		c.Plans.Models = make(map[string][]string, len(cfg.Plans.Models))
		for k, v := range cfg.Plans.Models {
			c.Plans.Models[k] = slices.Clone(v)
		}
	}
	return &c
}

// RedactURL hides the password (and any password query parameter) of a
// PostgreSQL URL. A value that is not a URL (a keyword/value DSN) is
// redacted entirely.
func RedactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" && u.User == nil {
		return RedactedValue
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), RedactedValue)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "password", "sslpassword", "sslkey":
			q.Set(k, RedactedValue)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// EffectiveYAML renders cfg, redacted, as YAML.
func EffectiveYAML(cfg *config.Config) ([]byte, error) {
	b, err := yaml.Marshal(Redact(cfg))
	if err != nil {
		return nil, fmt.Errorf("app: render config: %w", err)
	}
	return b, nil
}

// Migrate applies the database migrations (and with dev the minimal
// basejump/credit_accounts/api_keys schema first).
func Migrate(ctx context.Context, databaseURL string, dev bool, logger *slog.Logger) error {
	if databaseURL == "" {
		return errors.New("migrate: no database URL (use --database-url or " + config.EnvDatabaseURL + ")")
	}
	// store.Migrate's errors already start with "migrate:" and never carry the URL.
	return store.Migrate(ctx, databaseURL, dev, logger)
}
