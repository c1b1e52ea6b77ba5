// Package fakeaws assembles the local fakes of AWS STS and the Bedrock
// runtime (see the sts, bedrock and sigv4verify subpackages) from one YAML
// configuration, sharing a credential registry, and serves their admin API
// (request records and fault injection). Every credential here is fake.
package fakeaws

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	"github.com/tenantgate/tenantgate/internal/fakeaws/fault"
	"github.com/tenantgate/tenantgate/internal/fakeaws/sts"
)

// Platform is the platform's long-term (fake) credential.
type Platform struct {
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	PrincipalARN    string `yaml:"principal_arn"`
}

// Config is the YAML configuration of cmd/fakeaws.
type Config struct {
	STSListen      string        `yaml:"sts_listen"`
	BedrockListen  string        `yaml:"bedrock_listen"`
	BedrockTLSCert string        `yaml:"bedrock_tls_cert"`
	BedrockTLSKey  string        `yaml:"bedrock_tls_key"`
	AdminListen    string        `yaml:"admin_listen"`
	Platform       Platform      `yaml:"platform"`
	Roles          []sts.Role    `yaml:"roles"`
	Regions        []string      `yaml:"regions"`
	STSRegions     []string      `yaml:"sts_regions"`
	HostTemplate   string        `yaml:"host_template"`
	Models         []string      `yaml:"models"`
	DenyModels     []string      `yaml:"deny_models"`
	StreamDelay    time.Duration `yaml:"stream_delay"`
	MaxSkew        time.Duration `yaml:"max_skew"`
}

// PlatformInvokerRoleARN is the demo platform's own invoker role
// (extproc.platform_role_arn), in the platform's account; its trust policy
// lets the platform principal assume it with session tags and a
// SourceIdentity.
const PlatformInvokerRoleARN = "arn:aws:iam::999988887777:role/TenantgatePlatformInvoker"

// Default returns the demo configuration (fake credentials only).
func Default() Config {
	return Config{
		STSListen:     "127.0.0.1:4566",
		BedrockListen: "127.0.0.1:4567",
		AdminListen:   "127.0.0.1:4568",
		Platform: Platform{
			AccessKeyID:     "AKIAPLATFORMEXAMPLE01",
			SecretAccessKey: "platformSecretKeyExample0000000000000000",
			PrincipalARN:    "arn:aws:iam::999988887777:user/tenantgate-platform",
		},
		Roles: []sts.Role{
			{ARN: "arn:aws:iam::111122223333:role/AcmeBedrockAccess", ExternalID: "acme-external-id-7f3c", MaxSessionDuration: time.Hour, TagSession: true, SetSourceIdentity: true},
			{ARN: PlatformInvokerRoleARN, MaxSessionDuration: time.Hour, TagSession: true, SetSourceIdentity: true},
		},
		Regions:      []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"},
		HostTemplate: bedrock.DefaultHostTemplate,
		StreamDelay:  50 * time.Millisecond,
	}
}

// Load reads a YAML file over Default().
func Load(path string) (Config, error) {
	cfg := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("fakeaws: read config: %w", err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("fakeaws: parse config %s: %w", path, err)
	}
	return cfg, cfg.Validate()
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Platform.AccessKeyID == "" || c.Platform.SecretAccessKey == "" || c.Platform.PrincipalARN == "" {
		errs = append(errs, errors.New("platform access_key_id, secret_access_key and principal_arn are required"))
	}
	if len(c.Regions) == 0 {
		errs = append(errs, errors.New("at least one region is required"))
	}
	if (c.BedrockTLSCert == "") != (c.BedrockTLSKey == "") {
		errs = append(errs, errors.New("bedrock_tls_cert and bedrock_tls_key go together"))
	}
	if c.STSListen == "" || c.BedrockListen == "" || c.AdminListen == "" {
		errs = append(errs, errors.New("sts_listen, bedrock_listen and admin_listen are required"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("fakeaws: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Fakes are the assembled services.
type Fakes struct {
	Credentials *credstore.Store
	STS         *sts.Server
	Bedrock     *bedrock.Server
}

// New builds the fakes from cfg.
func New(cfg Config, logger *slog.Logger) (*Fakes, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	store := credstore.New(nil)
	store.AddStatic(cfg.Platform.AccessKeyID, cfg.Platform.SecretAccessKey, cfg.Platform.PrincipalARN)
	stsSrv, err := sts.New(sts.Config{Credentials: store, Roles: cfg.Roles, Regions: cfg.STSRegions, Logger: logger.With("service", "sts"), MaxSkew: cfg.MaxSkew, Faults: &fault.Injector{}})
	if err != nil {
		return nil, fmt.Errorf("fakeaws: %w", err)
	}
	br, err := bedrock.New(bedrock.Config{Credentials: store, Regions: cfg.Regions, HostTemplate: cfg.HostTemplate, Models: cfg.Models, DenyModels: cfg.DenyModels,
		StreamDelay: cfg.StreamDelay, Logger: logger.With("service", "bedrock"), MaxSkew: cfg.MaxSkew, Faults: &fault.Injector{}})
	if err != nil {
		return nil, fmt.Errorf("fakeaws: %w", err)
	}
	return &Fakes{Credentials: store, STS: stsSrv, Bedrock: br}, nil
}

// AdminHandler serves:
//
//	GET|DELETE /_fake/records          Bedrock request records
//	GET|DELETE /_fake/sts/calls        STS AssumeRole calls (GET also returns counts per role)
//	GET|POST   /_fake/sts/faults       {"latency_ms":N,"mode":""|"503"|"drop","fail_next":N}
//	GET|POST   /_fake/bedrock/faults   same for Bedrock
//	POST       /_fake/bedrock/throttle {"n":N}: next N requests get 429 ThrottlingException
//	GET        /healthz
func (f *Fakes) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_fake/records", f.Bedrock.RecordsHandler())
	mux.HandleFunc("/_fake/sts/calls", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			calls := f.STS.Calls()
			counts := map[string]int{}
			for _, c := range calls {
				counts[c.RoleARN] = f.STS.CallCount(c.RoleARN)
			}
			if calls == nil {
				calls = []sts.Call{}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"calls": calls, "counts": counts})
		case http.MethodDelete:
			f.STS.ResetCalls()
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	mux.Handle("/_fake/sts/faults", f.STS.Faults().Handler())
	mux.Handle("/_fake/bedrock/faults", f.Bedrock.Faults().Handler())
	mux.HandleFunc("POST /_fake/bedrock/throttle", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			N int `json:"n"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&in); err != nil {
			http.Error(w, "invalid JSON", http.StatusBadRequest)
			return
		}
		f.Bedrock.ThrottleNext(in.N)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}
