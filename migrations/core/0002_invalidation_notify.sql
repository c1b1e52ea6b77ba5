-- NOTIFY tenantgate_invalidate on every change to a row tenantgate caches.
-- Payload: {"table": "<table>", "account_id": "...", "user_id": "...",
-- "public_key": "..."} with the keys that apply to the table. Secret hashes
-- never appear in the payload. An update of an API key that only moves
-- last_used_at sends nothing (tenantgate writes it itself).

CREATE OR REPLACE FUNCTION public.tenantgate_notify_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    rows jsonb[];
    r jsonb;
    payload jsonb;
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'api_keys'
       AND (to_jsonb(NEW) - 'last_used_at') = (to_jsonb(OLD) - 'last_used_at') THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        rows := rows || to_jsonb(OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        rows := rows || to_jsonb(NEW);
    END IF;
    FOREACH r IN ARRAY rows LOOP
        payload := jsonb_build_object('table', TG_TABLE_NAME);
        IF TG_TABLE_NAME = 'accounts' THEN
            payload := payload || jsonb_build_object('account_id', r->>'id', 'user_id', r->>'primary_owner_user_id');
        ELSE
            payload := payload || jsonb_strip_nulls(jsonb_build_object('account_id', r->>'account_id'));
        END IF;
        IF TG_TABLE_NAME = 'account_user' THEN
            payload := payload || jsonb_build_object('user_id', r->>'user_id');
        END IF;
        IF TG_TABLE_NAME = 'api_keys' THEN
            payload := payload || jsonb_build_object('public_key', r->>'public_key');
        END IF;
        -- Identical payloads in one transaction are delivered once.
        PERFORM pg_notify('tenantgate_invalidate', payload::text);
    END LOOP;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['basejump.accounts', 'basejump.account_user', 'public.credit_accounts',
                             'public.api_keys', 'public.enterprise_bedrock_routing'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS tenantgate_invalidate ON %s', t);
        EXECUTE format('CREATE TRIGGER tenantgate_invalidate AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION public.tenantgate_notify_invalidate()', t);
    END LOOP;
END
$$;

-- TRUNCATE has no rows: tell listeners to drop everything for the table.
CREATE OR REPLACE FUNCTION public.tenantgate_notify_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenantgate_invalidate', jsonb_build_object('table', TG_TABLE_NAME, 'all', true)::text);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['basejump.accounts', 'basejump.account_user', 'public.credit_accounts',
                             'public.api_keys', 'public.enterprise_bedrock_routing'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS tenantgate_invalidate_truncate ON %s', t);
        EXECUTE format('CREATE TRIGGER tenantgate_invalidate_truncate AFTER TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION public.tenantgate_notify_truncate()', t);
    END LOOP;
END
$$;
