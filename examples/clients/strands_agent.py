"""Run a Strands agent (``pip install strands-agents``) on Bedrock through
tenantgate: BedrockModel with ``endpoint_url`` and the bearer token as
``api_key``; a private CA is trusted with AWS_CA_BUNDLE, which boto3 reads.

    TENANTGATE_URL=https://llm.example.com \\
    AWS_BEARER_TOKEN_BEDROCK="$SUPABASE_ACCESS_TOKEN"   # or a team's pk_…:sk_… \\
    ACCOUNT_ID=<team account uuid, optional> \\
    AWS_CA_BUNDLE=/path/to/ca.crt                       # only for a private CA \\
    python examples/clients/strands_agent.py
"""

import os

from strands import Agent
from strands.models import BedrockModel

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"


def make_agent(base_url, token, account_id=None, model=MODEL_ID):
    """Returns a Strands Agent whose model calls tenantgate at base_url."""
    bedrock = BedrockModel(model_id=model, region_name="us-east-1", endpoint_url=base_url, api_key=token)
    if account_id:
        # Select a team account the user is a member of.
        def add_account(request, **_):
            request.headers["x-account-id"] = account_id

        bedrock.client.meta.events.register("before-send.bedrock-runtime.*", add_account)
    return Agent(model=bedrock, callback_handler=None)


def main() -> None:
    agent = make_agent(os.environ["TENANTGATE_URL"], os.environ["AWS_BEARER_TOKEN_BEDROCK"], os.environ.get("ACCOUNT_ID"))
    print(agent("Say hello in one word."))


if __name__ == "__main__":
    main()
