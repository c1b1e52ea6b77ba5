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



LLAMA = "meta.llama3-8b-instruct-v1:0"  # not in the free tier's plan


def _call(e2e, bedrock, case):
    """Makes the call a denial case names, with real boto3 clients."""
    from botocore import UNSIGNED
    from botocore.config import Config

    if case == "missing_credential":
        # No credential at all: the bedrock fixture cleared AWS_*, and an
        # unsigned client sends no Authorization header.
        import boto3

        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=e2e["endpoint"],
            verify=e2e["ca_bundle"],
            config=Config(signature_version=UNSIGNED),
        )
        return client.converse(modelId=e2e["model"], messages=MESSAGES)
    if case == "invalid_token":
        return bedrock("not-a-valid-token").converse(modelId=e2e["model"], messages=MESSAGES)
    if case == "token_expired":
        return bedrock(e2e["token_expired"]).converse(modelId=e2e["model"], messages=MESSAGES)
    if case == "model_not_allowed":
        return bedrock(e2e["token_bob"]).converse(modelId=LLAMA, messages=MESSAGES)
    if case == "not_a_member":
        return bedrock(e2e["token_carol"], e2e["acme_account"]).converse(modelId=e2e["model"], messages=MESSAGES)
    if case == "unsupported_operation":
        # A bedrock-runtime operation tenantgate does not proxy: ext_authz
        # lets it through, ext_proc refuses it.
        return bedrock(e2e["token_bob"]).invoke_guardrail_checks(
            messages=[{"role": "user", "content": [{"text": "Hello"}]}], checks={}
        )
    raise AssertionError(case)


# What boto3 reports for each refusal: ClientError.response["Error"]["Code"]
# is the AWS error type (x-amzn-errortype / __type); the tenantgate code is
# in the x-tenantgate-error header.
DENIALS = [
    ("missing_credential", 401, "MissingAuthenticationTokenException"),
    ("invalid_token", 401, "UnrecognizedClientException"),
    ("token_expired", 401, "ExpiredTokenException"),
    ("model_not_allowed", 403, "AccessDeniedException"),
    ("not_a_member", 403, "AccessDeniedException"),
    ("unsupported_operation", 404, "UnknownOperationException"),
]


@pytest.mark.parametrize("case,status,aws_type", DENIALS, ids=[d[0] for d in DENIALS])
def test_denials_are_aws_errors(e2e, bedrock, records, case, status, aws_type):
    n = len(records.all())
    with pytest.raises(ClientError) as exc:
        _call(e2e, bedrock, case)
    resp = exc.value.response
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == status
    assert resp["Error"]["Code"] == aws_type, resp
    assert resp["Error"]["Message"], resp
    assert headers["x-tenantgate-error"] == case
    assert exc.value.operation_name
    assert aws_type in str(exc.value)
    if case == "token_expired":
        assert resp["Error"]["Message"].startswith("token expired at "), resp
        assert resp["Error"]["Message"].endswith("; get a new access token"), resp
        assert headers["www-authenticate"] == 'Bearer error="invalid_token", error_description="token expired"'
    assert records.since(n) == []
