-- tenantgate's own tables live in schema tenantgate, which Supabase's Data
-- API (PostgREST) does not serve and on which no API role has any right.
-- Earlier releases created public.enterprise_bedrock_routing, which a stock
-- Supabase project grants to anon and authenticated: this migration moves
-- its rows, drops it, and makes bedrock_external_id mandatory (AWS's
-- confused-deputy guidance: every tenant role trusts the platform only with
-- its own sts:ExternalId). Rows without one are refused, never invented.
--
-- 0001 and 0002 stay as they were released: on a new database they create
-- the public table that this migration then moves (empty).

CREATE SCHEMA IF NOT EXISTS tenantgate;

DO $$
DECLARE
    missing text;
BEGIN
    IF to_regclass('public.enterprise_bedrock_routing') IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(account_id::text, ', ' ORDER BY account_id) INTO missing
    FROM public.enterprise_bedrock_routing
    WHERE bedrock_external_id IS NULL OR bedrock_external_id = '';
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'tenantgate: enterprise_bedrock_routing rows without bedrock_external_id (accounts: %)', missing
            USING HINT = 'Agree an ExternalId with each of these tenants, require it in their role''s trust policy (sts:ExternalId), '
                         'set it in public.enterprise_bedrock_routing.bedrock_external_id (or delete the row), then run "tenantgate migrate" again.';
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS tenantgate.enterprise_bedrock_routing (
    account_id uuid PRIMARY KEY REFERENCES basejump.accounts (id) ON DELETE CASCADE,
    bedrock_role_arn text NOT NULL,
    bedrock_external_id text NOT NULL,
    region text,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- PostgreSQL regular expressions allow at most 255 repetitions, so
    -- lengths are checked separately.
    CONSTRAINT enterprise_bedrock_routing_role_arn_check
        CHECK (bedrock_role_arn ~ '^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$'
               AND char_length(bedrock_role_arn) <= 2048),
    CONSTRAINT enterprise_bedrock_routing_region_check
        CHECK (region IS NULL OR region ~ '^[a-z]{2}(-[a-z]+)+-[0-9]$'),
    CONSTRAINT enterprise_bedrock_routing_external_id_check
        CHECK (bedrock_external_id ~ '^[A-Za-z0-9+=,.@:/_-]+$'
               AND char_length(bedrock_external_id) BETWEEN 2 AND 1224)
);

-- Move the rows of the public table, then drop it. Inserting before the
-- triggers exist sends no notifications: the rows are unchanged.
DO $$
BEGIN
    IF to_regclass('public.enterprise_bedrock_routing') IS NOT NULL THEN
        INSERT INTO tenantgate.enterprise_bedrock_routing
            (account_id, bedrock_role_arn, bedrock_external_id, region, enabled, created_at, updated_at)
        SELECT account_id, bedrock_role_arn, bedrock_external_id, region, enabled,
               coalesce(created_at, updated_at, now()), coalesce(updated_at, created_at, now())
        FROM public.enterprise_bedrock_routing
        ON CONFLICT (account_id) DO NOTHING;
        DROP TABLE public.enterprise_bedrock_routing;
    END IF;
END
$$;

-- The trigger functions of 0002 stay in public (the other tables' triggers
-- use them); they run whoever changes a row, so no role needs EXECUTE.
DROP TRIGGER IF EXISTS tenantgate_set_updated_at ON tenantgate.enterprise_bedrock_routing;
CREATE TRIGGER tenantgate_set_updated_at
    BEFORE UPDATE ON tenantgate.enterprise_bedrock_routing
    FOR EACH ROW EXECUTE FUNCTION public.tenantgate_set_updated_at();
DROP TRIGGER IF EXISTS tenantgate_invalidate ON tenantgate.enterprise_bedrock_routing;
CREATE TRIGGER tenantgate_invalidate
    AFTER INSERT OR UPDATE OR DELETE ON tenantgate.enterprise_bedrock_routing
    FOR EACH ROW EXECUTE FUNCTION public.tenantgate_notify_invalidate();
DROP TRIGGER IF EXISTS tenantgate_invalidate_truncate ON tenantgate.enterprise_bedrock_routing;
CREATE TRIGGER tenantgate_invalidate_truncate
    AFTER TRUNCATE ON tenantgate.enterprise_bedrock_routing
    FOR EACH STATEMENT EXECUTE FUNCTION public.tenantgate_notify_truncate();

-- No right for PUBLIC or Supabase's API roles on the schema or anything in
-- it (whatever default privileges granted), nor on the trigger functions.
-- The roles exist on Supabase only.
REVOKE ALL ON SCHEMA tenantgate FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenantgate FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tenantgate FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenantgate_set_updated_at(), public.tenantgate_notify_invalidate(),
    public.tenantgate_notify_truncate() FROM PUBLIC;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON SCHEMA tenantgate FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA tenantgate FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA tenantgate FROM %I', r);
            EXECUTE format('REVOKE ALL ON FUNCTION public.tenantgate_set_updated_at(), '
                           'public.tenantgate_notify_invalidate(), public.tenantgate_notify_truncate() FROM %I', r);
        END IF;
    END LOOP;
END
$$;
