"""boto3 (examples/clients/boto3_client.py's setup) for the error names."""

import boto3
import pytest
from botocore.exceptions import ClientError

MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]


def client(e2e, monkeypatch, token, account=None):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
    c = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=e2e["endpoint"], verify=e2e["ca_bundle"])
    if account:
        c.meta.events.register("before-send.bedrock-runtime.*", lambda request, **_: request.headers.__setitem__("x-account-id", account))
    return c


@pytest.mark.parametrize("case", ["invalid_token", "invalid_api_key", "model_not_allowed", "not_a_member"])
def test_denied(e2e, records, report, denials, monkeypatch, case):
    if case == "not_a_member":
        token, model, status, account = e2e["token_carol"], e2e["model"], 403, e2e["acme_account"]
    else:
        (token, model, status), account = denials[case], None
    n = records.mark()
    with pytest.raises(ClientError) as exc:
        client(e2e, monkeypatch, token, account).converse(modelId=model, messages=MESSAGES)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    report("boto3", case, exc.value.response["Error"]["Code"])
    records.none_since(n)
