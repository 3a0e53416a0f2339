"""Channel files through the CLI against the sandbox: every channel's files folder (channel-get-filesfolder)
arrives in its trust channel's folder with the same content (quickXorHash) and timestamps, a private
channel's in its own site; a file tab is re-pointed at the migrated copy; a second pass copies only what is
new; verify sees a file changed in the trust channel; rollback removes exactly the copies trustfold made."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.identity.conftest import TARGET
from tests.teams.conftest import ACADEMY, World

WORD_TAB = "com.microsoft.teamspace.tab.file.staticviewer.word"


def _folder(w: World, team_id: str, channel_id: str, tenant: str = TARGET) -> tuple[str, str]:
    """(drive id, item id) of a channel's files folder."""
    folder = w.get(f"/teams/{team_id}/channels/{channel_id}/filesFolder", tenant)
    return folder["parentReference"]["driveId"], folder["id"]


def _tree(w: World, drive: str, folder: str, tenant: str = TARGET) -> dict[str, dict[str, Any]]:
    """Path under a folder -> the file's driveItem, for every file in it."""
    out: dict[str, dict[str, Any]] = {}
    todo = [(folder, "")]
    while todo:
        fid, prefix = todo.pop()
        for it in w.get(f"/drives/{drive}/items/{fid}/children", tenant)["value"]:
            path = f"{prefix}{it['name']}"
            if "folder" in it:
                todo.append((it["id"], f"{path}/"))
            else:
                out[path] = it
    return out


def _files(w: World, team_id: str, channel_id: str, tenant: str = TARGET) -> dict[str, dict[str, Any]]:
    return _tree(w, *_folder(w, team_id, channel_id, tenant), tenant)


def _same(a: dict[str, Any]) -> tuple[Any, ...]:
    """What a copy must keep: size, content hash and timestamps (to the second, as SharePoint keeps them)."""
    fs = a["fileSystemInfo"]
    return (
        a["size"],
        a["file"]["hashes"]["quickXorHash"],
        fs["createdDateTime"][:19],
        fs["lastModifiedDateTime"][:19],
    )


def _channel_pairs(w: World) -> list[tuple[str, str, str, str, str]]:
    """(name, source team, source channel, target team, target channel) for every channel at source."""
    source, target = w.teams(w.source), w.teams()
    out = []
    for name, s in sorted(source.items()):
        t = next(t for n, t in target.items() if n == name or n.endswith(f" {name}"))
        src, dst = w.channels(s["id"], w.source), w.channels(t["id"])
        for cname, sc in sorted(src.items()):
            out.append((f"{name} / {cname}", s["id"], sc["id"], t["id"], dst[cname]["id"]))
    return out


@pytest.fixture(scope="module")
def subject(migrated: World) -> dict[str, Any]:
    """A class team's subject channel at source with its file, and a Word tab on that file."""
    for s in migrated.teams(migrated.source).values():
        if s.get("specialization") != "educationClass":
            continue
        for name, ch in migrated.channels(s["id"], migrated.source).items():
            files = _files(migrated, s["id"], ch["id"], migrated.source)
            docx = [p for p in files if p.endswith(".docx")]
            if name != "General" and docx:
                item = files[docx[0]]
                with migrated.graph(migrated.source) as g:
                    r = g.post(
                        f"/teams/{s['id']}/channels/{ch['id']}/tabs",
                        json={
                            "displayName": "Scheme of work",
                            "teamsApp@odata.bind": (
                                f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{WORD_TAB}"
                            ),
                            "configuration": {
                                "entityId": item["id"].upper(),
                                "contentUrl": item["webUrl"],
                                "removeUrl": None,
                                "websiteUrl": None,
                            },
                        },
                    )
                    assert r.status_code == 201, r.text
                    # A tab on a file outside the channel's folder: nothing migrated to point it at.
                    outside = item["webUrl"].rsplit("/", 2)[0] + "/Handbook.docx"
                    r = g.post(
                        f"/teams/{s['id']}/channels/{ch['id']}/tabs",
                        json={
                            "displayName": "Old handbook",
                            "teamsApp@odata.bind": (
                                f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{WORD_TAB}"
                            ),
                            "configuration": {"entityId": "A1", "contentUrl": outside},
                        },
                    )
                    assert r.status_code == 201, r.text
                return {"team": s, "channel": ch, "name": name, "file": docx[0], "url": item["webUrl"]}
    raise AssertionError("the generator made no class team channel with a file")


def test_channel_files_arrive_with_their_content_and_timestamps(migrated: World, subject: Any) -> None:
    out = migrated.run()
    assert out["status"] == "succeeded", out
    assert out["counts"]["channel_files"] > 0, out["counts"]
    assert [
        n
        for n in out["notes"]
        if "'Old handbook'" in n and "not among the channel's migrated files: not carried" in n
    ], out["notes"]
    compared = 0
    kinds = set()
    for name, sid, scid, tid, tcid in _channel_pairs(migrated):
        before = _files(migrated, sid, scid, migrated.source)
        after = _files(migrated, tid, tcid)
        assert set(after) == set(before), name
        for path, item in before.items():
            assert _same(after[path]) == _same(item), f"{name}/{path}"
            compared += 1
        if before:
            kinds.add(migrated.get(f"/teams/{tid}/channels/{tcid}")["membershipType"])
    assert compared and "private" in kinds, "no private channel's files were compared"
    report = json.loads(migrated.cli("report", ACADEMY, "--format", "json", "--out", "-").stdout)
    assert report["academies"][0]["teams"]["channel_files"] == compared, report["academies"][0]["teams"]
    html = migrated.cli("report", ACADEMY, "--format", "html", "--out", "-").stdout
    assert f'data-field="channel-files">{compared}<' in html


def test_a_file_tab_opens_the_migrated_copy(migrated: World, subject: Any) -> None:
    target = next(p for p in _channel_pairs(migrated) if p[2] == subject["channel"]["id"])
    tid, tcid = target[3], target[4]
    copy = _files(migrated, tid, tcid)[subject["file"]]
    tabs = migrated.get(f"/teams/{tid}/channels/{tcid}/tabs?$expand=teamsApp")["value"]
    assert "Old handbook" not in {t["displayName"] for t in tabs}
    tab = next(t for t in tabs if t["displayName"] == "Scheme of work")
    assert tab["teamsApp"]["id"] == WORD_TAB
    assert tab["configuration"]["contentUrl"].replace("%20", " ") == copy["webUrl"].replace("%20", " ")
    assert tab["configuration"]["entityId"] == copy["id"].upper()
    # Nothing of the legacy tenant's file is left in the trust's tab.
    assert subject["url"] not in json.dumps(tab["configuration"])


def test_a_second_pass_copies_only_new_files(migrated: World, subject: Any) -> None:
    sid, scid = subject["team"]["id"], subject["channel"]["id"]
    drive, folder = _folder(migrated, sid, scid, migrated.source)
    with migrated.graph(migrated.source) as g:
        r = g.put(
            f"/drives/{drive}/items/{folder}:/{quote('Homework week 2.docx')}:/content",
            content=b"week two homework" * 50,
        )
        assert r.status_code in (200, 201), r.text
    out = migrated.run()
    assert out["status"] == "succeeded", out
    assert out["counts"]["channel_files"] == 1, out["counts"]
    target = next(p for p in _channel_pairs(migrated) if p[2] == scid)
    new = _files(migrated, target[3], target[4])["Homework week 2.docx"]
    assert _same(new) == _same(_files(migrated, sid, scid, migrated.source)["Homework week 2.docx"])


def test_verify_reports_a_file_changed_in_the_trust_channel(migrated: World, subject: Any) -> None:
    clean = json.loads(migrated.cli("verify", ACADEMY, "--json", check=False).stdout)
    assert clean["teams"]["differences"] == [], clean["teams"]
    target = next(p for p in _channel_pairs(migrated) if p[2] == subject["channel"]["id"])
    copy = _files(migrated, target[3], target[4])[subject["file"]]
    with migrated.graph() as g:
        drive = copy["parentReference"]["driveId"]
        r = g.put(f"/drives/{drive}/items/{copy['id']}/content", content=b"edited in the trust")
        assert r.status_code == 200, r.text
    out = migrated.cli("verify", ACADEMY, "--json", check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    diffs = json.loads(out.stdout)["teams"]["differences"]
    assert [d for d in diffs if "channel file" in d["difference"] and subject["file"] in d["object"]], diffs


def test_rollback_removes_exactly_the_copies_trustfold_made(migrated: World, subject: Any) -> None:
    folders = {p[0]: _folder(migrated, p[3], p[4]) for p in _channel_pairs(migrated)}
    mine = next(p[0] for p in _channel_pairs(migrated) if p[2] == subject["channel"]["id"])
    drive, folder = folders[mine]
    with migrated.graph() as g:
        r = g.put(
            f"/drives/{drive}/items/{folder}:/Teacher%20notes.docx:/content", content=b"the trust's own"
        )
        assert r.status_code in (200, 201), r.text
    made = migrated.rows(
        "SELECT count(*) AS n FROM journal WHERE phase = 'teams' AND op = 'copy' AND event = 'done'"
    )[0]["n"]
    assert made > 0
    out = migrated.cli("rollback", ACADEMY, "--phase", "teams", "--yes", check=False)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    # The copy changed in the trust since is kept, and the operator is told which.
    assert f"kept {subject['name']}/{subject['file']}: changed in the trust tenant" in out.stdout, out.stdout
    # The folders stay (channel-delete leaves a channel's files in its site); what trustfold copied into
    # them is gone, but for the copy changed in the trust since and the trust teacher's own file.
    for name, (d, f) in folders.items():
        left = set(_tree(migrated, d, f))
        assert left == ({"Teacher notes.docx", subject["file"]} if name == mine else set()), name
