-- Per-account AWS Bedrock routing for enterprise tenants. Requires the
-- basejump schema (Supabase basejump migrations, or tenantgate's dev set).

DO $$
BEGIN
    IF to_regclass('basejump.accounts') IS NULL OR to_regclass('basejump.account_user') IS NULL THEN
        RAISE EXCEPTION 'tenantgate: basejump.accounts / basejump.account_user do not exist'
            USING HINT = 'Apply the Supabase basejump migrations first, or run "tenantgate migrate --dev" for a development database.';
    END IF;
    IF to_regclass('public.credit_accounts') IS NULL OR to_regclass('public.api_keys') IS NULL THEN
        RAISE EXCEPTION 'tenantgate: public.credit_accounts / public.api_keys do not exist'
            USING HINT = 'Apply the application billing and API key migrations first, or run "tenantgate migrate --dev" for a development database.';
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS public.enterprise_bedrock_routing (
    account_id uuid PRIMARY KEY REFERENCES basejump.accounts (id) ON DELETE CASCADE,
    bedrock_role_arn text NOT NULL,
    bedrock_external_id text
);

-- Columns that an earlier hand-made version of the table may lack.
ALTER TABLE public.enterprise_bedrock_routing ADD COLUMN IF NOT EXISTS region text;
ALTER TABLE public.enterprise_bedrock_routing ADD COLUMN IF NOT EXISTS enabled boolean NOT NULL DEFAULT true;
ALTER TABLE public.enterprise_bedrock_routing ADD COLUMN IF NOT EXISTS created_at timestamptz DEFAULT now();
ALTER TABLE public.enterprise_bedrock_routing ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT now();

-- The checks are (re)created on every application so that a changed
-- definition replaces the old one. PostgreSQL regular expressions allow at
-- most 255 repetitions, so lengths are checked separately.
ALTER TABLE public.enterprise_bedrock_routing
    DROP CONSTRAINT IF EXISTS enterprise_bedrock_routing_role_arn_check,
    DROP CONSTRAINT IF EXISTS enterprise_bedrock_routing_region_check,
    DROP CONSTRAINT IF EXISTS enterprise_bedrock_routing_external_id_check;
ALTER TABLE public.enterprise_bedrock_routing
    ADD CONSTRAINT enterprise_bedrock_routing_role_arn_check
        CHECK (bedrock_role_arn ~ '^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$'
               AND char_length(bedrock_role_arn) <= 2048),
    ADD CONSTRAINT enterprise_bedrock_routing_region_check
        CHECK (region IS NULL OR region ~ '^[a-z]{2}(-[a-z]+)+-[0-9]$'),
    ADD CONSTRAINT enterprise_bedrock_routing_external_id_check
        CHECK (bedrock_external_id IS NULL OR (bedrock_external_id ~ '^[A-Za-z0-9+=,.@:/_-]+$'
               AND char_length(bedrock_external_id) BETWEEN 2 AND 1224));

CREATE OR REPLACE FUNCTION public.tenantgate_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS tenantgate_set_updated_at ON public.enterprise_bedrock_routing;
CREATE TRIGGER tenantgate_set_updated_at
    BEFORE UPDATE ON public.enterprise_bedrock_routing
    FOR EACH ROW EXECUTE FUNCTION public.tenantgate_set_updated_at();
