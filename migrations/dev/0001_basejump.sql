-- Minimal basejump schema, credit_accounts and api_keys for development and
-- tests. Every object is created only if missing, so on a Supabase database
-- where basejump already exists this file changes nothing.

CREATE SCHEMA IF NOT EXISTS basejump;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'basejump' AND t.typname = 'account_role'
    ) THEN
        CREATE TYPE basejump.account_role AS ENUM ('owner', 'member');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS basejump.accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    primary_owner_user_id uuid NOT NULL,
    name text,
    slug text UNIQUE,
    personal_account boolean NOT NULL DEFAULT false,
    private_metadata jsonb DEFAULT '{}'::jsonb,
    public_metadata jsonb DEFAULT '{}'::jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS accounts_primary_owner_personal_idx
    ON basejump.accounts (primary_owner_user_id) WHERE personal_account;

CREATE TABLE IF NOT EXISTS basejump.account_user (
    user_id uuid NOT NULL,
    account_id uuid NOT NULL REFERENCES basejump.accounts (id) ON DELETE CASCADE,
    account_role basejump.account_role NOT NULL,
    PRIMARY KEY (user_id, account_id)
);

CREATE TABLE IF NOT EXISTS public.credit_accounts (
    account_id uuid PRIMARY KEY REFERENCES basejump.accounts (id) ON DELETE CASCADE,
    tier text NOT NULL DEFAULT 'none',
    trial_status text,
    balance numeric,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.api_keys (
    key_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    public_key text UNIQUE NOT NULL,
    secret_key_hash text NOT NULL,
    account_id uuid REFERENCES basejump.accounts (id) ON DELETE CASCADE,
    title text,
    description text,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'expired')),
    expires_at timestamptz,
    last_used_at timestamptz,
    created_at timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS api_keys_account_id_idx ON public.api_keys (account_id);
