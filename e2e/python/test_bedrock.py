"""boto3 and LiteLLM through Envoy + tenantgate to the fake Bedrock."""

import json
import time

import botocore
import pytest
from botocore.exceptions import ClientError

ACME_ROLE = "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/"
PLATFORM = "arn:aws:iam::999988887777:user/tenantgate-platform"
MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]


def clean(rec):
    assert not rec["bearer_authorization"], "caller's bearer token reached AWS"
    assert not rec["api_key_header"], "caller's API key reached AWS"


def test_botocore_supports_bearer():
    major, minor = (int(x) for x in botocore.__version__.split(".")[:2])
    assert (major, minor) >= (1, 39), botocore.__version__


def test_converse_enterprise_team(e2e, bedrock, records):
    n = len(records.all())
    client = bedrock(e2e["token_alice"], e2e["acme_account"])
    out = client.converse(modelId=e2e["model"], messages=MESSAGES)
    text = out["output"]["message"]["content"][0]["text"]
    [rec] = records.since(n)
    clean(rec)
    assert rec["status"] == 200
    assert rec["region"] == "eu-west-1"
    assert rec["principal_arn"].startswith(ACME_ROLE)
    assert rec["principal_arn"] in text


def test_converse_free_personal(e2e, bedrock, records):
    n = len(records.all())
    out = bedrock(e2e["token_bob"]).converse(modelId=e2e["model"], messages=MESSAGES)
    assert PLATFORM in out["output"]["message"]["content"][0]["text"]
    [rec] = records.since(n)
    clean(rec)
    assert (rec["region"], rec["principal_arn"]) == ("us-east-1", PLATFORM)


def test_converse_stream(e2e, bedrock, records):
    n = len(records.all())
    out = bedrock(e2e["token_alice"], e2e["acme_account"]).converse_stream(modelId=e2e["model"], messages=MESSAGES)
    times, text = [], ""
    for event in out["stream"]:
        times.append(time.monotonic())
        if "contentBlockDelta" in event:
            text += event["contentBlockDelta"]["delta"].get("text", "")
    assert len(times) >= 3
    assert times[-1] - times[0] >= 0.1, "events were not streamed"
    [rec] = records.since(n)
    clean(rec)
    assert rec["principal_arn"].startswith(ACME_ROLE)
    assert rec["principal_arn"] in text


def test_invoke_model(e2e, bedrock, records):
    n = len(records.all())
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}
    out = bedrock(e2e["token_alice"], e2e["acme_account"]).invoke_model(
        modelId=e2e["model"], body=json.dumps(body), contentType="application/json"
    )
    payload = json.loads(out["body"].read())
    assert "AcmeBedrockAccess" in payload["content"][0]["text"]
    [rec] = records.since(n)
    clean(rec)
    assert rec["operation"] == "InvokeModel"


def test_invalid_token_denied(e2e, bedrock, records):
    n = len(records.all())
    with pytest.raises(ClientError) as exc:
        bedrock("not-a-valid-token").converse(modelId=e2e["model"], messages=MESSAGES)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert records.since(n) == []


def test_litellm_bearer(e2e, records, monkeypatch):
    """LiteLLM's Bedrock provider with api_key = the user's JWT: LiteLLM
    sends it as Authorization: Bearer (no SigV4 on the client side)."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    monkeypatch.setattr(litellm, "ssl_verify", e2e["ca_bundle"])
    n = len(records.all())
    resp = litellm.completion(
        model="bedrock/converse/" + e2e["model"],
        messages=[{"role": "user", "content": "Hello"}],
        api_key=e2e["token_alice"],
        aws_region_name="us-east-1",
        aws_bedrock_runtime_endpoint=e2e["endpoint"],
        extra_headers={"x-account-id": e2e["acme_account"]},
    )
    text = resp.choices[0].message.content
    [rec] = records.since(n)
    clean(rec)
    assert rec["principal_arn"].startswith(ACME_ROLE)
    assert rec["principal_arn"] in text
