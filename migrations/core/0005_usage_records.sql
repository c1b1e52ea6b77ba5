-- One row per metered Bedrock request (tenantgate usage metering). The
-- request id is Envoy's x-request-id and the idempotency key: a record
-- written twice is stored, and its credits debited, once.

CREATE SCHEMA IF NOT EXISTS tenantgate;

CREATE TABLE IF NOT EXISTS tenantgate.usage_records (
    request_id text PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    account_id text NOT NULL,
    tier text NOT NULL DEFAULT '',
    user_id text NOT NULL DEFAULT '',
    principal_kind text NOT NULL DEFAULT '',
    api_key_id text NOT NULL DEFAULT '',
    model text NOT NULL DEFAULT '',
    resolved_model text NOT NULL DEFAULT '',
    operation text NOT NULL,
    region text NOT NULL DEFAULT '',
    identity_kind text NOT NULL DEFAULT '',
    status integer NOT NULL,
    complete boolean NOT NULL,
    error_type text NOT NULL DEFAULT '',
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cache_read_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    final_usage boolean NOT NULL DEFAULT false,
    latency_ms double precision NOT NULL DEFAULT 0,
    ttfb_ms double precision NOT NULL DEFAULT 0,
    -- Credits debited by the price table; NULL when credits are off or the
    -- model has no price.
    cost numeric,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS usage_records_account_time
    ON tenantgate.usage_records (account_id, occurred_at);

-- As 0003: no right for PUBLIC or Supabase's API roles.
REVOKE ALL ON ALL TABLES IN SCHEMA tenantgate FROM PUBLIC;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON SCHEMA tenantgate FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA tenantgate FROM %I', r);
        END IF;
    END LOOP;
END
$$;
