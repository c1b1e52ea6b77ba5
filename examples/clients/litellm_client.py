"""Call Bedrock through tenantgate with LiteLLM. LiteLLM signs Bedrock
requests with SigV4 itself, so give it an api_key: it then sends
``Authorization: Bearer <api_key>``, which tenantgate verifies (a Supabase
access token) before re-signing the request for the tenant's AWS account.

    TENANTGATE_URL=https://llm.example.com \
    SUPABASE_ACCESS_TOKEN=eyJ... \
    python examples/clients/litellm_client.py
"""

import os

import litellm


def main() -> None:
    headers = {}
    if os.environ.get("ACCOUNT_ID"):
        headers["x-account-id"] = os.environ["ACCOUNT_ID"]

    resp = litellm.completion(
        model="bedrock/converse/" + os.environ.get("MODEL_ID", "anthropic.claude-3-haiku-20240307-v1:0"),
        messages=[{"role": "user", "content": "Say hello in one word."}],
        api_base=os.environ["TENANTGATE_URL"],
        api_key=os.environ["SUPABASE_ACCESS_TOKEN"],
        aws_region_name="us-east-1",
        extra_headers=headers or None,
    )
    print(resp.choices[0].message.content)


if __name__ == "__main__":
    main()
