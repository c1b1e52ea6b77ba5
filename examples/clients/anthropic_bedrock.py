"""Call Bedrock through tenantgate with the Anthropic SDK's AnthropicBedrock
client (``pip install "anthropic[bedrock]"``). The client sends
``Authorization: Bearer <api_key>`` (or AWS_BEARER_TOKEN_BEDROCK) instead of
SigV4 signing; tenantgate re-signs for the tenant.

    TENANTGATE_URL=https://llm.example.com \\
    AWS_BEARER_TOKEN_BEDROCK="$SUPABASE_ACCESS_TOKEN"   # or a team's pk_…:sk_… \\
    ACCOUNT_ID=<team account uuid, optional> \\
    CA_BUNDLE=/path/to/ca.crt                           # only for a private CA \\
    python examples/clients/anthropic_bedrock.py
"""

import os
import ssl

import anthropic
from anthropic import AnthropicBedrock

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"


def make_client(base_url, token, account_id=None, ca_bundle=None):
    """Returns an AnthropicBedrock client for tenantgate at base_url.

    token is a Supabase access token or a platform API key (pk_…:sk_…);
    account_id selects a team account (x-account-id); ca_bundle trusts a
    private CA for the TLS connection.
    """
    headers = {"x-account-id": account_id} if account_id else None
    http_client = None
    if ca_bundle:
        # The SDK's own HTTP client, trusting the given CA file.
        http_client = anthropic.DefaultHttpxClient(verify=ssl.create_default_context(cafile=ca_bundle))
    return AnthropicBedrock(
        base_url=base_url,
        api_key=token,
        aws_region="us-east-1",  # signing default only; tenantgate picks the tenant's region
        default_headers=headers,
        http_client=http_client,
        max_retries=0,
    )


def ask(client, prompt, model=MODEL_ID):
    """One InvokeModel call; returns the answer text."""
    msg = client.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}])
    return msg.content[0].text


def ask_stream(client, prompt, model=MODEL_ID):
    """One InvokeModelWithResponseStream call; yields text as it arrives."""
    with client.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}]) as stream:
        yield from stream.text_stream


def main() -> None:
    client = make_client(
        os.environ["TENANTGATE_URL"],
        os.environ["AWS_BEARER_TOKEN_BEDROCK"],
        account_id=os.environ.get("ACCOUNT_ID"),
        ca_bundle=os.environ.get("CA_BUNDLE"),
    )
    print(ask(client, "Say hello in one word."))
    for text in ask_stream(client, "Count to three."):
        print(text, end="", flush=True)
    print()


if __name__ == "__main__":
    main()
