"""Call Bedrock through tenantgate with boto3, using the user's Supabase
access token as the Bedrock API key (bearer token). boto3/botocore >= 1.39
send ``Authorization: Bearer <token>`` when AWS_BEARER_TOKEN_BEDROCK is set.

    TENANTGATE_URL=https://llm.example.com \
    AWS_BEARER_TOKEN_BEDROCK="$SUPABASE_ACCESS_TOKEN" \
    ACCOUNT_ID=<team account uuid, optional> \
    python examples/clients/boto3_client.py
"""

import os

import boto3


def main() -> None:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",  # tenantgate re-signs for the tenant's region
        endpoint_url=os.environ["TENANTGATE_URL"],
    )

    account_id = os.environ.get("ACCOUNT_ID")
    if account_id:
        # Select a team account the user is a member of.
        def add_account(request, **_):
            request.headers["x-account-id"] = account_id

        client.meta.events.register("before-send.bedrock-runtime.*", add_account)

    resp = client.converse(
        modelId=os.environ.get("MODEL_ID", "anthropic.claude-3-haiku-20240307-v1:0"),
        messages=[{"role": "user", "content": [{"text": "Say hello in one word."}]}],
    )
    print(resp["output"]["message"]["content"][0]["text"])


if __name__ == "__main__":
    main()
