package config

import "testing"

// FuzzParse: any input either fails with an error or yields a configuration
// that passes validation and has every default filled in.
func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("server: {shutdown_grace: 45}\n"))
	f.Add([]byte("auth:\n  issuers:\n    - issuer: https://p.supabase.co/auth/v1\n      jwks_url: https://p.supabase.co/auth/v1/.well-known/jwks.json\n"))
	f.Add([]byte("extproc: {assume_role: {duration: 2h, refresh_before: 10m}, default_region: eu-west-1}\n"))
	f.Add([]byte("plans: {models: {free: ['anthropic.claude-3-haiku*']}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, nil)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		if c.Server.GRPCListen == "" || c.Server.HTTPListen == "" || c.Server.ShutdownGrace <= 0 ||
			len(c.Auth.CredentialOrder) == 0 || c.ExtProc.MaxBodyBytes <= 0 || !ValidRegion(c.ExtProc.DefaultRegion) {
			t.Fatalf("defaults missing: %+v", c)
		}
	})
}
