package stack

// Demo tenants of the embedded default tenants file
// (internal/store/filestore/default-tenants.yaml). DEMO VALUES ONLY.
const (
	AliceUserID       = "11111111-1111-4111-8111-111111111111"
	AlicePersonal     = "a0000000-0000-4000-8000-000000000011"
	BobUserID         = "22222222-2222-4222-8222-222222222222"
	BobPersonal       = "a0000000-0000-4000-8000-000000000022"
	CarolUserID       = "33333333-3333-4333-8333-333333333333"
	CarolPersonal     = "a0000000-0000-4000-8000-000000000033"
	AcmeAccountID     = "a0000000-0000-4000-8000-000000000001"
	AcmeTier          = "tier_200_1000"
	AcmeRoleARN       = "arn:aws:iam::111122223333:role/AcmeBedrockAccess"
	AcmeExternalID    = "acme-external-id-7f3c"
	AcmeRegion        = "eu-west-1"
	AcmeAPIKeyPublic  = "pk_demoAcmePublicKey000000000000000"
	AcmeAPIKeySecret  = "sk_demoAcmeSecretKey000000000000000"
	AcmeAPIKeyID      = "c0000000-0000-4000-8000-000000000001"
	AcmeAPIKeyHash    = "0276f6718bbc05ba14a22861009cfe7a8a53b9157f32e59daf2b6162d80f24da"
	APIKeySecret      = "demo-api-key-secret-change-me-0123456789"
	PlatformAccessKey = "AKIAPLATFORMEXAMPLE01"
	PlatformSecretKey = "platformSecretKeyExample0000000000000000"
	PlatformPrincipal = "arn:aws:iam::999988887777:user/tenantgate-platform"
	DefaultRegion     = "us-east-1"
	// DemoModel is a model id with a ':' (travels as %3A, signed as %253A).
	DemoModel = "anthropic.claude-3-haiku-20240307-v1:0"
	// DeniedModel is a model the fake Bedrock refuses for every signer with
	// AccessDeniedException naming the signer's ARN, as AWS does.
	DeniedModel = "anthropic.claude-3-opus-20240229-v1:0"
	// DemoInferenceProfile is an inference-profile ARN (its '/' travels as %2F).
	DemoInferenceProfile = "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0"
)

// DemoModels returns the plans.models of the stack: every tier of the demo
// tenants listed explicitly (tenantgate refuses unlisted tiers with 403
// unknown_tier).
func DemoModels() map[string][]string {
	return map[string][]string{
		"free":          {"*"},
		"tier_125_800":  {"*"},
		"tier_200_1000": {"*"},
	}
}

// SeedSQL inserts the demo tenants into a database migrated with
// `tenantgate migrate --dev`: the same accounts, memberships, tiers, API
// key and route as the embedded default tenants file.
const SeedSQL = `
INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account) VALUES
  ('a0000000-0000-4000-8000-000000000011', '11111111-1111-4111-8111-111111111111', 'Alice', 'alice', true),
  ('a0000000-0000-4000-8000-000000000022', '22222222-2222-4222-8222-222222222222', 'Bob', 'bob', true),
  ('a0000000-0000-4000-8000-000000000033', '33333333-3333-4333-8333-333333333333', 'Carol', 'carol', true),
  ('a0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'Acme Corp', 'acme', false);
INSERT INTO basejump.account_user (user_id, account_id, account_role) VALUES
  ('11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000011', 'owner'),
  ('22222222-2222-4222-8222-222222222222', 'a0000000-0000-4000-8000-000000000022', 'owner'),
  ('33333333-3333-4333-8333-333333333333', 'a0000000-0000-4000-8000-000000000033', 'owner'),
  ('11111111-1111-4111-8111-111111111111', 'a0000000-0000-4000-8000-000000000001', 'owner'),
  ('22222222-2222-4222-8222-222222222222', 'a0000000-0000-4000-8000-000000000001', 'member');
INSERT INTO public.credit_accounts (account_id, tier) VALUES
  ('a0000000-0000-4000-8000-000000000011', 'free'),
  ('a0000000-0000-4000-8000-000000000022', 'free'),
  ('a0000000-0000-4000-8000-000000000033', 'tier_125_800'),
  ('a0000000-0000-4000-8000-000000000001', 'tier_200_1000');
INSERT INTO public.api_keys (key_id, public_key, secret_key_hash, account_id, title, status) VALUES
  ('c0000000-0000-4000-8000-000000000001', 'pk_demoAcmePublicKey000000000000000',
   '0276f6718bbc05ba14a22861009cfe7a8a53b9157f32e59daf2b6162d80f24da',
   'a0000000-0000-4000-8000-000000000001', 'Acme demo key', 'active');
INSERT INTO tenantgate.enterprise_bedrock_routing (account_id, bedrock_role_arn, bedrock_external_id, region, enabled) VALUES
  ('a0000000-0000-4000-8000-000000000001', 'arn:aws:iam::111122223333:role/AcmeBedrockAccess', 'acme-external-id-7f3c', 'eu-west-1', true);
`
