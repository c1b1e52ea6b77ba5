"""Claude Code (pinned in examples/clients/claude-code) runs
examples/clients/claude_code.sh unchanged: print mode, one answer."""

import os
import subprocess

from conftest import ROOT, assert_acme, assert_free

SCRIPT = ROOT / "examples" / "clients" / "claude_code.sh"
BIN = ROOT / "examples" / "clients" / "claude-code" / "node_modules" / ".bin"


def run_claude(e2e, tmp_path, token, account=None):
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env["PATH"]
    env.update(
        TENANTGATE_URL=e2e["endpoint"],
        TENANTGATE_TOKEN=token,
        CA_BUNDLE=e2e["ca_bundle"],
        HOME=str(tmp_path),
        # Every model Claude Code would use is the demo model, so that it
        # makes exactly one call.
        ANTHROPIC_MODEL=e2e["model"],
        ANTHROPIC_SMALL_FAST_MODEL=e2e["model"],
        ANTHROPIC_DEFAULT_HAIKU_MODEL=e2e["model"],
        ANTHROPIC_DEFAULT_SONNET_MODEL=e2e["model"],
        ANTHROPIC_DEFAULT_OPUS_MODEL=e2e["model"],
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
    )
    if account:
        env["ACCOUNT_ID"] = account
    return subprocess.run(
        ["bash", str(SCRIPT), "-p", "Say hello", "--max-turns", "1"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def check(out, rec, control):
    assert out.returncode == 0, out.stderr
    assert rec["operation"] == "InvokeModelWithResponseStream"
    assert rec["principal_arn"] in out.stdout
    # Control-plane reads Claude Code makes at start (inference profile
    # listings) are re-signed too; who signs them is the control-plane
    # rules' business (e2e controlplane_test.go).
    for c in control:
        assert c["host"].startswith("bedrock."), c["host"]
        assert not c["bearer_authorization"] and not c["api_key_header"], c


def test_free_user(e2e, records, tmp_path):
    n = records.mark()
    out = run_claude(e2e, tmp_path, e2e["token_bob"])
    rec, control = records.one_since(n, runtime_only=True)
    assert_free(rec)
    check(out, rec, control)


def test_team_api_key_as_bearer(e2e, records, tmp_path):
    n = records.mark()
    out = run_claude(e2e, tmp_path, e2e["api_key"])
    rec, control = records.one_since(n, runtime_only=True)
    assert_acme(rec)
    check(out, rec, control)


def test_team_member_with_custom_headers(e2e, records, tmp_path):
    n = records.mark()
    out = run_claude(e2e, tmp_path, e2e["token_alice"], e2e["acme_account"])
    rec, control = records.one_since(n, runtime_only=True)
    assert_acme(rec)
    check(out, rec, control)
