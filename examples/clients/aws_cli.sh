#!/usr/bin/env bash
# Call Bedrock through tenantgate with the AWS CLI (v1 from PyPI `awscli`, or
# v2). The CLI takes its bearer token from AWS_BEARER_TOKEN_BEDROCK only and
# cannot add headers, so it uses:
#   - a user's Supabase access token  -> the user's personal account, or
#   - a team's platform API key (pk_…:sk_…) as the bearer -> that team account.
#
#   TENANTGATE_URL=https://llm.example.com \
#   AWS_BEARER_TOKEN_BEDROCK="$SUPABASE_ACCESS_TOKEN"   # or pk_…:sk_… \
#   AWS_CA_BUNDLE=/path/to/ca.crt                        # only for a private CA \
#   examples/clients/aws_cli.sh "Say hello in one word."
#
# The region is only the SDK's signing default: tenantgate re-signs every
# request for the tenant's own region.
set -euo pipefail

: "${TENANTGATE_URL:?set TENANTGATE_URL to the Envoy endpoint}"
: "${AWS_BEARER_TOKEN_BEDROCK:?set AWS_BEARER_TOKEN_BEDROCK to an access token or pk_…:sk_… API key}"
prompt=${1:-Say hello in one word.}
# JSON-encode the prompt (quotes, backslashes, newlines).
prompt_json=$(printf '%s' "$prompt" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')

exec aws bedrock-runtime converse \
	--endpoint-url "$TENANTGATE_URL" \
	--region "${AWS_REGION:-us-east-1}" \
	--model-id "${MODEL_ID:-anthropic.claude-3-haiku-20240307-v1:0}" \
	--messages "[{\"role\":\"user\",\"content\":[{\"text\":$prompt_json}]}]" \
	--query 'output.message.content[0].text' \
	--output text
