-- The development credit_accounts and api_keys stay in public, where
-- Supabase's default privileges grant every new table to anon and
-- authenticated and its Data API serves them. Row-level security without a
-- policy hides every row from those roles (the table owner, which
-- tenantgate connects as, is not subject to it), and their grants are
-- revoked. The roles exist on Supabase only.

ALTER TABLE public.credit_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.api_keys ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.credit_accounts, public.api_keys FROM PUBLIC;

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON public.credit_accounts, public.api_keys FROM %I', r);
        END IF;
    END LOOP;
END
$$;
