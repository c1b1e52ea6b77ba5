"""langchain-aws and Strands recipes (examples/clients/)."""

import langchain_aws_client
import strands_agent
from conftest import assert_acme, assert_free


def test_langchain_aws_team_member(e2e, records, monkeypatch):
    monkeypatch.setenv("AWS_CA_BUNDLE", e2e["ca_bundle"])
    n = records.mark()
    chat = langchain_aws_client.make_chat(e2e["endpoint"], e2e["token_alice"], e2e["acme_account"], e2e["model"])
    text = chat.invoke("Hello").content
    rec = records.one_since(n)
    assert_acme(rec)
    assert rec["principal_arn"] in text


def test_strands_free_user(e2e, records, monkeypatch):
    monkeypatch.setenv("AWS_CA_BUNDLE", e2e["ca_bundle"])
    n = records.mark()
    agent = strands_agent.make_agent(e2e["endpoint"], e2e["token_bob"], model=e2e["model"])
    text = str(agent("Hello"))
    rec = records.one_since(n)
    assert_free(rec)
    assert rec["operation"] == "ConverseStream"
    assert rec["principal_arn"] in text


def test_strands_team_api_key_as_bearer(e2e, records, monkeypatch):
    monkeypatch.setenv("AWS_CA_BUNDLE", e2e["ca_bundle"])
    n = records.mark()
    agent = strands_agent.make_agent(e2e["endpoint"], e2e["api_key"], model=e2e["model"])
    text = str(agent("Hello"))
    rec = records.one_since(n)
    assert_acme(rec)
    assert rec["principal_arn"] in text
