"""The AWS CLI (awscli from PyPI) runs examples/clients/aws_cli.sh unchanged."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, assert_acme, assert_free

SCRIPT = ROOT / "examples" / "clients" / "aws_cli.sh"


def run_cli(e2e, token, model=None):
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    env.update(TENANTGATE_URL=e2e["endpoint"], AWS_BEARER_TOKEN_BEDROCK=token, AWS_CA_BUNDLE=e2e["ca_bundle"])
    if model:
        env["MODEL_ID"] = model
    return subprocess.run(["bash", str(SCRIPT), "Hello"], env=env, capture_output=True, text=True, timeout=120)


def test_cli_is_pinned_awscli():
    out = subprocess.run([str(Path(sys.executable).parent / "aws"), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("aws-cli/1."), out.stdout


def test_free_user(e2e, records):
    n = records.mark()
    out = run_cli(e2e, e2e["token_bob"])
    assert out.returncode == 0, out.stderr
    rec = records.one_since(n)
    assert_free(rec)
    assert rec["principal_arn"] in out.stdout


def test_team_api_key_as_bearer(e2e, records):
    n = records.mark()
    out = run_cli(e2e, e2e["api_key"])
    assert out.returncode == 0, out.stderr
    rec = records.one_since(n)
    assert_acme(rec)
    assert rec["principal_arn"] in out.stdout


@pytest.mark.parametrize("case", ["invalid_token", "invalid_api_key", "model_not_allowed"])
def test_denied(e2e, records, report, denials, case):
    token, model, _status = denials[case]
    n = records.mark()
    out = run_cli(e2e, token, model)
    assert out.returncode != 0
    m = re.search(r"An error occurred \(([^)]*)\) when calling the Converse operation", out.stderr)
    assert m, out.stderr
    report("aws-cli", case, m.group(1))
    records.none_since(n)
