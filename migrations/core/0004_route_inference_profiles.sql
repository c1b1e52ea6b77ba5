-- Per-tenant application inference profiles: enterprise_bedrock_routing
-- may map model ids to the tenant's own application-inference-profile ARNs,
-- e.g. {"anthropic.claude-3-haiku-20240307-v1:0":
--       "arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1b2c3d4e5f6"}.
-- tenantgate rewrites such a model id in the request path to the ARN before
-- signing, and refuses a profile ARN bound to one tenant for every other
-- tenant. NULL (the default) maps nothing. tenantgate validates the entries
-- (model ids, ARN syntax, one model per ARN) when it reads the row; a row it
-- cannot use fails closed for that tenant.
ALTER TABLE tenantgate.enterprise_bedrock_routing
    ADD COLUMN IF NOT EXISTS inference_profiles jsonb;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'enterprise_bedrock_routing_inference_profiles_check'
                     AND conrelid = 'tenantgate.enterprise_bedrock_routing'::regclass) THEN
        ALTER TABLE tenantgate.enterprise_bedrock_routing
            ADD CONSTRAINT enterprise_bedrock_routing_inference_profiles_check
            CHECK (inference_profiles IS NULL
                   OR (jsonb_typeof(inference_profiles) = 'object'
                       AND octet_length(inference_profiles::text) <= 65536));
    END IF;
END
$$;
