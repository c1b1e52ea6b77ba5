"""Fixtures for the tenantgate end-to-end suite.

The Go test e2e (TestTenantsFileStore/Python, TestPostgresStore/Python)
starts the local stack and runs this suite with TG_E2E_* set; run alone, the
suite skips.
"""

import json
import os
import urllib.request

import pytest

ENV = (
    "TG_E2E_ENDPOINT",
    "TG_E2E_CA_BUNDLE",
    "TG_E2E_TOKEN_ALICE",
    "TG_E2E_TOKEN_BOB",
    "TG_E2E_TOKEN_CAROL",
    "TG_E2E_TOKEN_EXPIRED",
    "TG_E2E_ACME_ACCOUNT",
    "TG_E2E_FAKE_ADMIN",
    "TG_E2E_MODEL",
)


@pytest.fixture(scope="session")
def e2e():
    missing = [k for k in ENV if not os.environ.get(k)]
    if missing:
        pytest.skip("stack not running (set by go test ./e2e): missing " + ", ".join(missing))
    return {k[len("TG_E2E_"):].lower(): os.environ[k] for k in ENV}


class Records:
    """The fake Bedrock's request records (GET/DELETE /_fake/records)."""

    def __init__(self, admin):
        self.url = admin.rstrip("/") + "/_fake/records"

    def all(self):
        with urllib.request.urlopen(self.url, timeout=10) as resp:
            return json.load(resp)

    def since(self, n):
        return self.all()[n:]


@pytest.fixture
def records(e2e):
    return Records(e2e["fake_admin"])


@pytest.fixture
def bedrock(e2e, monkeypatch):
    """Returns make(token, account=None): a boto3 bedrock-runtime client that
    authenticates with the bearer token (AWS_BEARER_TOKEN_BEDROCK) and
    optionally names a team account with x-account-id."""
    import boto3

    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k, raising=False)

    def make(token, account=None):
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=e2e["endpoint"],
            verify=e2e["ca_bundle"],
        )
        if account:

            def add_account(request, **_):
                request.headers["x-account-id"] = account

            client.meta.events.register("before-send.bedrock-runtime.*", add_account)
        return client

    return make
