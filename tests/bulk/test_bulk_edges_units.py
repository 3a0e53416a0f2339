"""The bulk engine's edges that need no service: the secrets file (issue #23 findings 9 and 11), the one
sanitising layer for manifest XML (findings 5 and 13: controls, noncharacters, bidi in UserGroupMap.xml) and
the OData literal of a hostile path (finding 6)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

from migrations.core.steps import Step
from migrations.files.bulk import manifest as mf
from migrations.files.bulk.packages import Lib, manifests
from migrations.files.bulk.secrets import Secrets
from migrations.files.bulk.sharepoint_rest import url_arg
from migrations.safety.sanitise import path_problems, xml_text
from sandbox.migration_rest import odata_string
from trust import ConfigError


def test_secrets_are_replaced_atomically_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "bulk-secrets-x.json"
    s = Secrets(path)
    s.put("p1", key="k1", queue="q1")
    s.put("p2", key="k2")
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # loosened by hand or by a copy
    again = Secrets(path)
    assert path.stat().st_mode & 0o777 == 0o600  # tightened on every open
    assert again.get("p1") == {"key": "k1", "queue": "q1"} and again.get("p2") == {"key": "k2"}
    again.drop("p1")
    assert json.loads(path.read_text()) == {"p2": {"key": "k2"}}
    assert not [p for p in tmp_path.iterdir() if p.name != path.name]  # no temporary left behind


@pytest.mark.parametrize("text", ['{"p1": {"key": "k1", "que', "", '["p1"]', '{"p1": {"key": 3}}'])
def test_a_corrupt_secrets_file_is_refused_naming_it_and_kept(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bulk-secrets-x.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        Secrets(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    assert path.read_text() == text


def test_path_problems_name_what_sharepoint_cannot_carry() -> None:
    assert path_problems("Policies/ok name %20 ' # .docx") == []
    assert path_problems("a\ufffeb/c\uffff\x01") == [
        "U+FFFE NONCHARACTER",
        "U+FFFF NONCHARACTER",
        "U+0001 CONTROL CHARACTER",
    ]
    assert path_problems("tab\there") == ["U+0009 CONTROL CHARACTER"]


def test_display_names_are_sanitised_into_user_group_map() -> None:
    """A mapped author's source display name holding a control character, U+FFFF and bidi controls: the
    package is built (old code: PackagingError for the whole run) and the name carries none of them."""
    g = lambda n: f"00000000-0000-4000-8000-{n:012d}"  # noqa: E731
    lib = Lib(mf.Library("https://h/sites/x", g(1), "/sites/x", g(2), "D", "D", g(3)), "https://h/sites/x/D",
              {"": g(3)})  # fmt: skip
    step = Step("k1", "copy", {"path": "a.txt", "size": 1, "created": "", "modified": ""})
    files = {"k1": {"id": g(5), "item": g(6), "blob": "1.dat"}}
    users = {"src-1": ("ann@trust.example", "Ann\x07 \u202eevil\u202c \uffffSmith")}
    out = manifests([step], files, {"k1": {"author": "src-1", "editor": "src-1"}}, lib, users)
    root = ET.fromstring(out["UserGroupMap.xml"])
    (user,) = root.iter("{urn:deployment-usergroupmap-schema}User")
    assert user.get("Name") == "Ann_ evil _Smith" and user.get("Login", "").endswith("ann@trust.example")
    assert xml_text("\u2066x\u2069\ud800") == "x_"


@pytest.mark.parametrize("name", ["pct%20folder", "it's #1", "100% done", "a''b", "q?x=1", "'"])
def test_url_arg_doubles_quotes_before_percent_encoding(name: str) -> None:
    """The literal survives SharePoint's one HTTP decoding and the OData parse as exactly the name."""
    arg = url_arg(f"/sites/x/D/{name}")
    assert "#" not in arg and "?" not in arg and " " not in arg
    assert odata_string(unquote(arg)) == f"/sites/x/D/{name}"


def test_secrets_tmp_with_loose_mode_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "bulk-secrets-x.json"
    tmp = tmp_path / "bulk-secrets-x.json.tmp"
    tmp.write_text("stale")
    tmp.chmod(0o666)
    Secrets(path).put("p", key="k")
    assert path.stat().st_mode & 0o777 == 0o600 and not tmp.exists()
    assert os.stat(path).st_size > 0
