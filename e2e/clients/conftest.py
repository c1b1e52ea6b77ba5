"""Fixtures for the client recipes suite (examples/clients/ through Envoy).

The Go test e2e TestClients starts the local stack and runs this suite with
TG_E2E_* set; run alone, the suite skips. Each denial's SDK-visible error
name is appended to TG_E2E_REPORT (JSON lines) for TestClients to compare
with the AWS error type tenantgate should answer.
"""

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "clients"))

ENV = (
    "TG_E2E_ENDPOINT",
    "TG_E2E_CA_BUNDLE",
    "TG_E2E_TOKEN_ALICE",
    "TG_E2E_TOKEN_BOB",
    "TG_E2E_TOKEN_CAROL",
    "TG_E2E_API_KEY",
    "TG_E2E_BAD_API_KEY",
    "TG_E2E_ACME_ACCOUNT",
    "TG_E2E_FAKE_ADMIN",
    "TG_E2E_MODEL",
    "TG_E2E_DENIED_MODEL",
    "TG_E2E_REPORT",
)

ACME_ROLE = "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/"
PLATFORM = "arn:aws:iam::999988887777:user/tenantgate-platform"


@pytest.fixture(scope="session")
def e2e():
    missing = [k for k in ENV if not os.environ.get(k)]
    if missing:
        pytest.skip("stack not running (set by go test ./e2e): missing " + ", ".join(missing))
    return {k[len("TG_E2E_"):].lower(): os.environ[k] for k in ENV}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No AWS settings of the machine leak in (credentials, profiles, CA)."""
    for k in list(os.environ):
        if k.startswith("AWS_") or k.startswith("ANTHROPIC_"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


class Records:
    """The fake Bedrock's request records (GET /_fake/records)."""

    def __init__(self, admin):
        self.url = admin.rstrip("/") + "/_fake/records"

    def all(self):
        with urllib.request.urlopen(self.url, timeout=10) as resp:
            return json.load(resp)

    def since(self, n):
        return self.all()[n:]

    def mark(self):
        return len(self.all())

    def one_since(self, n, runtime_only=False):
        """The one request since mark n; with runtime_only, control-plane
        calls (bedrock.<region>, which some clients make at start) are
        returned separately and not counted."""
        recs = self.since(n)
        control = []
        if runtime_only:
            control = [r for r in recs if not r["host"].startswith("bedrock-runtime.")]
            recs = [r for r in recs if r["host"].startswith("bedrock-runtime.")]
        assert len(recs) == 1, f"want one upstream request, fake Bedrock saw {len(recs)}"
        rec = recs[0]
        if runtime_only:
            return self._clean(rec), control
        return self._clean(rec)

    @staticmethod
    def _clean(rec):
        assert not rec["bearer_authorization"], "caller's bearer token reached AWS"
        assert not rec["api_key_header"], "caller's API key reached AWS"
        assert rec["status"] == 200, rec
        return rec

    def none_since(self, n):
        assert self.since(n) == [], "a denied request reached AWS"


@pytest.fixture
def records(e2e):
    return Records(e2e["fake_admin"])


def assert_free(rec):
    assert (rec["region"], rec["principal_arn"]) == ("us-east-1", PLATFORM)


def assert_acme(rec):
    assert rec["region"] == "eu-west-1"
    assert rec["principal_arn"].startswith(ACME_ROLE)


@pytest.fixture
def report(e2e):
    """report(client, case, name): records the error name an SDK showed."""

    def write(client, case, name):
        with open(e2e["report"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"client": client, "case": case, "name": name}) + "\n")

    return write


@pytest.fixture
def denials(e2e):
    """The denials every client is tried with: case -> (token, model,
    HTTP status). The case is tenantgate's error code."""
    return {
        "invalid_token": (e2e["token_bob"][:-8] + "AAAAAAAA", e2e["model"], 401),
        "invalid_api_key": (e2e["bad_api_key"], e2e["model"], 401),
        "model_not_allowed": (e2e["token_bob"], e2e["denied_model"], 403),
    }
