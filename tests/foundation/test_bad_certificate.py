"""Issue 23 finding 13: a certificate file that is not PEM stopped with a bare ValueError naming neither the
tenant nor the variable. Now it is bad input: exit 2, one line naming tenant, variable, field and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foundation.test_bad_input_exits import CONFIG, _one_line_exit_2


@pytest.mark.parametrize("command", [["preflight", "hillside"], ["provision-onedrive", "hillside"]])
def test_a_certificate_that_is_not_pem_names_tenant_and_variable(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --graph-url: the real credential is built (azure-identity reads the file) before any request."""
    cert = tmp_path / "trust.pfx"
    cert.write_bytes(b"\x30\x82\x01\x00 not a certificate at all")
    monkeypatch.setenv("TRUSTFOLD_TRUST_CERTIFICATE_PATH", str(cert))
    state = tmp_path / "state.db"
    line = _one_line_exit_2(["--config-dir", str(CONFIG), "--state", str(state), *command], capsys)
    assert "TRUSTFOLD_TRUST_CERTIFICATE_PATH" in line and str(cert) in line, line
    assert "6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11" in line and "credential.certificate_path_env" in line, line
    assert "ValueError" not in line


@pytest.mark.parametrize("graph_url", [None, "http://127.0.0.1:9"])
def test_a_private_key_file_others_can_read_is_refused(
    graph_url: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PEM file holds the app's private key: group- or world-readable, it is bad input (exit 2, one line
    saying how to fix it), checked before any request, on the real path and the rehearsal's alike."""
    from sandbox.testing import make_certificate

    key, cert_pem = make_certificate()
    pem = tmp_path / "trust.pem"
    pem.write_text(key + cert_pem)
    pem.chmod(0o644)
    monkeypatch.setenv("TRUSTFOLD_TRUST_CERTIFICATE_PATH", str(pem))
    state = tmp_path / "state.db"
    extra = ["--graph-url", graph_url] if graph_url else []
    line = _one_line_exit_2(
        ["--config-dir", str(CONFIG), "--state", str(state), *extra, "provision-onedrive", "hillside"], capsys
    )
    assert "readable by others" in line and f"chmod 600 {pem}" in line, line
    assert "PRIVATE KEY" not in line and key.splitlines()[1] not in line
