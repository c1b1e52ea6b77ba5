#!/usr/bin/env bash
# Run Claude Code on Bedrock through tenantgate. Claude Code reads only its
# environment, so this is the whole configuration:
#
#   TENANTGATE_URL=https://llm.example.com \
#   TENANTGATE_TOKEN="$SUPABASE_ACCESS_TOKEN"   # or a team's pk_…:sk_… API key \
#   ACCOUNT_ID=<team account uuid, optional> \
#   CA_BUNDLE=/path/to/ca.crt                   # only for a private CA \
#   examples/clients/claude_code.sh -p "Say hello"
#
# The same variables can go in ~/.claude/settings.json under "env".
# Claude Code picks cross-region model ids (us.…) by default; for a tenant
# served in another geography set ANTHROPIC_MODEL (and
# ANTHROPIC_DEFAULT_{HAIKU,SONNET,OPUS}_MODEL) to ids the tenant may call.
set -euo pipefail

: "${TENANTGATE_URL:?set TENANTGATE_URL to the Envoy endpoint}"
: "${TENANTGATE_TOKEN:?set TENANTGATE_TOKEN to an access token or pk_…:sk_… API key}"

export CLAUDE_CODE_USE_BEDROCK=1
export ANTHROPIC_BEDROCK_BASE_URL=$TENANTGATE_URL
export AWS_BEARER_TOKEN_BEDROCK=$TENANTGATE_TOKEN
# Signing default only: tenantgate re-signs for the tenant's own region. Pick
# the AWS_REGION whose geography matches the tenant's when using
# cross-region profile ids (us., eu., apac.).
export AWS_REGION=${AWS_REGION:-us-east-1}
if [[ -n ${ACCOUNT_ID:-} ]]; then
	# "Name: value" lines, one header per line.
	export ANTHROPIC_CUSTOM_HEADERS="x-account-id: $ACCOUNT_ID"
fi
if [[ -n ${CA_BUNDLE:-} ]]; then
	# Node adds these to its trusted roots.
	export NODE_EXTRA_CA_CERTS=$CA_BUNDLE
fi

exec claude "$@"
