-- Register (or update) an enterprise tenant's Bedrock route.
--
-- Prerequisites:
--   1. The account exists in basejump.accounts and its credit_accounts tier
--      is one of plans.enterprise_tiers (default tier_125_800, tier_200_1000,
--      tier_150_1200).
--   2. The tenant created the IAM role of examples/aws/ in its AWS account,
--      trusting the platform's principal and requiring the ExternalId below.
--   3. `tenantgate migrate` has created tenantgate.enterprise_bedrock_routing
--      (schema tenantgate: run this as the database owner, e.g. postgres on
--      Supabase; the anon and authenticated API roles have no access).
--
-- Run with psql -v, for example:
--   psql "$TENANTGATE_DATABASE_URL" \
--     -v account_id=a0000000-0000-4000-8000-000000000001 \
--     -v role_arn=arn:aws:iam::111122223333:role/AcmeBedrockAccess \
--     -v external_id="$(openssl rand -hex 16)" \
--     -v region=eu-west-1 \
--     -f examples/register-tenant.sql
--
-- The table's constraints reject malformed role ARNs, regions and external
-- IDs, and a missing external ID: tenantgate never assumes a role without one. A trigger notifies running tenantgate instances, which drop
-- their cached route (and STS credentials for a changed role) at once.

\set ON_ERROR_STOP on

BEGIN;

-- Refuse to route an account that does not exist.
SELECT 1 / count(*) AS account_exists
FROM basejump.accounts
WHERE id = :'account_id'::uuid;

INSERT INTO tenantgate.enterprise_bedrock_routing
    (account_id, bedrock_role_arn, bedrock_external_id, region, enabled)
VALUES
    (:'account_id'::uuid, :'role_arn', :'external_id', :'region', true)
ON CONFLICT (account_id) DO UPDATE
    SET bedrock_role_arn    = EXCLUDED.bedrock_role_arn,
        bedrock_external_id = EXCLUDED.bedrock_external_id,
        region              = EXCLUDED.region,
        enabled             = EXCLUDED.enabled;

COMMIT;

-- To stop routing a tenant to its own account (it falls back according to
-- extproc.enterprise_without_route):
--   UPDATE tenantgate.enterprise_bedrock_routing SET enabled = false WHERE account_id = '…';
