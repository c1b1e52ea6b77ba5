"""The Anthropic SDK's AnthropicBedrock (examples/clients/anthropic_bedrock.py)."""

import anthropic
import anthropic_bedrock as recipe
import pytest
from conftest import assert_acme, assert_free


def test_free_user_invoke(e2e, records):
    n = records.mark()
    text = recipe.ask(recipe.make_client(e2e["endpoint"], e2e["token_bob"], ca_bundle=e2e["ca_bundle"]), "Hello", e2e["model"])
    rec = records.one_since(n)
    assert_free(rec)
    assert rec["operation"] == "InvokeModel"
    assert rec["principal_arn"] in text


def test_free_user_stream(e2e, records):
    n = records.mark()
    client = recipe.make_client(e2e["endpoint"], e2e["token_bob"], ca_bundle=e2e["ca_bundle"])
    parts = list(recipe.ask_stream(client, "Hello", e2e["model"]))
    assert len(parts) >= 2, parts
    rec = records.one_since(n)
    assert_free(rec)
    assert rec["operation"] == "InvokeModelWithResponseStream"
    assert rec["principal_arn"] in "".join(parts)


def test_team_api_key_as_bearer_invoke_and_stream(e2e, records):
    client = recipe.make_client(e2e["endpoint"], e2e["api_key"], ca_bundle=e2e["ca_bundle"])
    n = records.mark()
    text = recipe.ask(client, "Hello", e2e["model"])
    rec = records.one_since(n)
    assert_acme(rec)
    assert rec["principal_arn"] in text
    n = records.mark()
    text = "".join(recipe.ask_stream(client, "Hello", e2e["model"]))
    rec = records.one_since(n)
    assert_acme(rec)
    assert rec["operation"] == "InvokeModelWithResponseStream"
    assert rec["principal_arn"] in text


def test_team_member_with_account_header(e2e, records):
    n = records.mark()
    client = recipe.make_client(e2e["endpoint"], e2e["token_alice"], account_id=e2e["acme_account"], ca_bundle=e2e["ca_bundle"])
    text = "".join(recipe.ask_stream(client, "Hello", e2e["model"]))
    rec = records.one_since(n)
    assert_acme(rec)
    assert rec["principal_arn"] in text


EXCEPTIONS = {401: anthropic.AuthenticationError, 403: anthropic.PermissionDeniedError}


@pytest.mark.parametrize("case", ["invalid_token", "invalid_api_key", "model_not_allowed"])
def test_denied(e2e, records, denials, case):
    token, model, status = denials[case]
    n = records.mark()
    with pytest.raises(anthropic.APIStatusError) as exc:
        recipe.ask(recipe.make_client(e2e["endpoint"], token, ca_bundle=e2e["ca_bundle"]), "Hello", model)
    assert exc.value.status_code == status
    assert isinstance(exc.value, EXCEPTIONS[status]), type(exc.value)
    records.none_since(n)
