"""Call Bedrock through tenantgate with langchain-aws (``pip install
langchain-aws``): ChatBedrockConverse with ``endpoint_url`` and the bearer
token as ``api_key`` (or AWS_BEARER_TOKEN_BEDROCK); a private CA is trusted
with AWS_CA_BUNDLE, which boto3 reads.

    TENANTGATE_URL=https://llm.example.com \\
    AWS_BEARER_TOKEN_BEDROCK="$SUPABASE_ACCESS_TOKEN"   # or a team's pk_…:sk_… \\
    ACCOUNT_ID=<team account uuid, optional> \\
    AWS_CA_BUNDLE=/path/to/ca.crt                       # only for a private CA \\
    python examples/clients/langchain_aws_client.py
"""

import os

from langchain_aws import ChatBedrockConverse

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"


def make_chat(base_url, token, account_id=None, model=MODEL_ID):
    """Returns a ChatBedrockConverse model calling tenantgate at base_url."""
    return ChatBedrockConverse(
        model=model,
        region_name="us-east-1",  # signing default only
        endpoint_url=base_url,
        api_key=token,
        default_headers={"x-account-id": account_id} if account_id else None,
    )


def main() -> None:
    chat = make_chat(os.environ["TENANTGATE_URL"], os.environ["AWS_BEARER_TOKEN_BEDROCK"], os.environ.get("ACCOUNT_ID"))
    print(chat.invoke("Say hello in one word.").content)


if __name__ == "__main__":
    main()
