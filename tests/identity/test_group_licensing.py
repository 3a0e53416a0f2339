"""licences.mode: group through the real CLI: licence groups ensured, users licensed by membership, verify
reads licenseAssignmentStates, rollback removes exactly what the phase assigned."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG, TARGET, Cli, bootstrapped, snapshot

PHASES = ("users", "groups", "memberships")


def group_config(tmp: Path, mode: str = "group") -> Path:
    cfg = tmp / "config"
    shutil.copytree(CONFIG, cfg)
    trust = cfg / "trust.yaml"
    text = trust.read_text()
    anchor = "  pupil: STANDARDWOFFPACK_STUDENT\n"
    assert anchor in text
    trust.write_text(text.replace(anchor, anchor + f"  mode: {mode}\n"))
    return cfg


class ConfigCli(Cli):
    def __init__(self, url: str, state: Path, config: Path):
        super().__init__(url, state)
        self.config = config

    def env(self) -> dict[str, str]:
        return {**super().env(), "TRUSTFOLD_CONFIG_DIR": str(self.config)}


@pytest.fixture
def gcli(tmp_path: Path) -> Iterator[ConfigCli]:
    cfg = group_config(tmp_path)
    with running_sandbox(cfg, size=30, seed=2) as url:
        bootstrapped(str(url))
        yield ConfigCli(str(url), tmp_path / "state.db", cfg)


def _skus(url: str) -> dict[str, dict]:
    return {s["skuPartNumber"]: s for s in snapshot(url)["subscribedSkus"]}


def test_users_licensed_by_group_verify_rollback(gcli: ConfigCli) -> None:
    before = snapshot(gcli.url)
    gcli("discover", "hillside")
    plan = gcli.json("plan", "hillside", "--phase", "users")
    counts = plan["counts"]
    users = counts["create-user"]
    assert "assign-licence" not in counts
    assert counts["ensure-licence-group"] == 2 and counts["assign-group-licence"] == 2
    assert counts["add-members"] <= users // 20 + 2
    stats0 = httpx.get(f"{gcli.url}/sandbox/stats").json()["tenants"][TARGET]
    result = gcli.json("run", "hillside", "--phase", "users", "--replan")
    assert result["status"] == "succeeded", result
    stats1 = httpx.get(f"{gcli.url}/sandbox/stats").json()["tenants"][TARGET]
    # One write per user, plus a twentieth for the membership, plus the two groups and their licences.
    assert stats1["writes"] - stats0["writes"] <= users + users // 20 + 2 + 4
    snap = snapshot(gcli.url)
    groups = {g["mailNickname"]: g for g in snap["groups"]}
    staff, pupils = groups["nllt-hillside-staff"], groups["nllt-hillside-pupils"]
    skus = _skus(gcli.url)
    assert staff["assignedLicenses"] == [
        {"disabledPlans": [], "skuId": skus["STANDARDWOFFPACK_FACULTY"]["skuId"]}
    ]
    assert pupils["assignedLicenses"][0]["skuId"] == skus["STANDARDWOFFPACK_STUDENT"]["skuId"]
    created = [
        u
        for u in snap["users"]
        if u["id"] in set(snap["members"][staff["id"]] + snap["members"][pupils["id"]])
    ]
    assert len(created) == users
    assert all(
        [(s["assignedByGroup"], s["state"]) for s in u["licenseAssignmentStates"]]
        in ([(staff["id"], "Active")], [(pupils["id"], "Active")])
        for u in created
    )
    consumed = {k: v["consumedUnits"] for k, v in skus.items()}
    before_consumed = {s["skuPartNumber"]: s["consumedUnits"] for s in before["subscribedSkus"]}
    assert sum(consumed.values()) - sum(before_consumed.values()) == users
    for phase in PHASES[1:]:
        assert gcli.json("run", "hillside", "--phase", phase, "--replan")["status"] == "succeeded"
    verified = gcli.json("verify", "hillside")
    assert verified["ok"], verified["differences"][:5]
    again = gcli.json("run", "hillside", "--phase", "users", "--replan")
    assert again["counts"]["planned"] == 0
    # Rollback: memberships, the groups' licences, the groups and the users; seats back where they were.
    gcli("rollback", "hillside", "--phase", "all", "--yes", "--purge")
    after = snapshot(gcli.url)
    assert {g["mailNickname"] for g in after["groups"]} == {g["mailNickname"] for g in before["groups"]}
    assert after["users"] == before["users"]
    assert {s["skuPartNumber"]: s["consumedUnits"] for s in after["subscribedSkus"]} == before_consumed


def test_seat_shortage_shows_in_verify_and_existing_group_is_kept(gcli: ConfigCli) -> None:
    gcli("discover", "oakwood")
    # The pupils group exists already (declared by the infrastructure): it is used, never deleted.
    with httpx.Client(base_url=f"{gcli.url}/v1.0") as c:
        from sandbox.testing import token

        c.headers["Authorization"] = f"Bearer {token(gcli.url, TARGET)}"
        r = c.post(
            "/groups",
            json={
                "displayName": "Oakwood Pupils",
                "mailNickname": "nllt-oakwood-pupils",
                "mailEnabled": False,
                "securityEnabled": True,
            },
        )
        assert r.status_code == 201
        existing = r.json()["id"]
    skus = _skus(gcli.url)
    pupil = skus["STANDARDWOFFPACK_STUDENT"]
    r = httpx.post(
        f"{gcli.url}/sandbox/tenants/{TARGET}/seats",
        json={"STANDARDWOFFPACK_STUDENT": pupil["consumedUnits"] + 3},
    )
    assert r.status_code == 200
    # Preflight would stop this run on the shortage (tested in test_preflight.py); here it goes ahead so
    # that what Entra does on a shortage, and what run and verify say of it, is seen. Entra licenses the
    # members in the background (the sandbox's default delay): the run waits for it and reports each member
    # left in CountViolation as a failure, never as success.
    proc = gcli("run", "oakwood", "--phase", "users", "--replan", "--skip-preflight", "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "failed" and result["counts"]["failed"] == 0
    short = [f for f in result["failures"] if "CountViolation" in f["message"]]
    assert short and result["counts"]["licence_problems"] == len(short) == len(result["failures"])
    assert all(f["step"].startswith("licence:") and "add or free seats" in f["message"] for f in short)
    assert "without an active licence" in proc.stderr
    snap = snapshot(gcli.url)
    nicknames = [g["mailNickname"] for g in snap["groups"]]
    assert nicknames.count("nllt-oakwood-pupils") == 1
    proc = gcli("verify", "oakwood", "--json", check=False)
    assert proc.returncode == 1
    diffs = json.loads(proc.stdout)["differences"]
    shortage = [d for d in diffs if "CountViolation" in d["message"]]
    assert shortage and all("pupils licence group" in d["message"] for d in shortage)
    gcli("rollback", "oakwood", "--phase", "users", "--yes")
    after = {g["id"]: g for g in snapshot(gcli.url)["groups"]}
    assert existing in after, "a group the phase did not create is never deleted"
    assert after[existing]["assignedLicenses"] == [], "the licence this phase gave it is removed"
    assert snapshot(gcli.url)["members"][existing] == []


def test_bad_licence_mode_exits_2_naming_the_field(tmp_path: Path) -> None:
    cfg = group_config(tmp_path, mode="grup")
    proc = ConfigCli("http://127.0.0.1:9", tmp_path / "state.db", cfg)("config", "validate", check=False)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "trust.yaml" in line and "licences.mode" in line and "direct" in line and "group" in line
    assert "Traceback" not in proc.stderr


def _run_pending(gcli: ConfigCli, academy: str) -> int:
    """Run the users phase without waiting for Entra: exit 1, every member reported as still being
    processed; the number of members."""
    proc = gcli("run", academy, "--phase", "users", "--replan", "--licence-wait", "0", "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "failed" and result["counts"]["failed"] == 0
    assert all("still being processed by Entra" in f["message"] for f in result["failures"])
    snap = snapshot(gcli.url)
    groups = {g["mailNickname"]: g["id"] for g in snap["groups"]}
    members = {m for p in ("staff", "pupils") for m in snap["members"][groups[f"nllt-{academy}-{p}"]]}
    assert len(result["failures"]) == len(members) > 0
    return len(members)


def test_run_verify_and_onedrive_provisioning_wait_for_background_licensing(gcli: ConfigCli) -> None:
    """Entra licenses a licence group's new members in the background (learn.microsoft.com/entra/identity/
    users/licensing-group-advanced): a run whose bounded wait ends first reports every member still being
    processed (exit 1, never success); verify waits for the processing before judging; OneDrive
    provisioning, which SharePoint does only for licensed users, waits for the licences before asking, so
    no member is skipped as unlicensed."""
    gcli("discover", "hillside")
    gcli("discover", "oakwood")
    knobs = f"{gcli.url}/sandbox/faults"
    assert httpx.post(knobs, json={"group_licensing_delay_s": 6}).status_code == 200
    _run_pending(gcli, "hillside")
    verified = json.loads(gcli("verify", "hillside", "--json", check=False).stdout)
    assert verified["checked"] and not [d for d in verified["differences"] if "licence" in d["message"]]
    members = _run_pending(gcli, "oakwood")
    prov = json.loads(gcli("provision-onedrive", "oakwood", "--json").stdout)
    assert prov["unlicensed"] == 0 and prov["licence_problems"] == []
    assert prov["requested"] == members == prov["ready"]


def test_licence_states_waiting_and_processing_time_reach_run_status_and_verify(gcli: ConfigCli) -> None:
    """Entra's group licensing as the sandbox now emulates it (docs/sandbox.md, "Licences"): the run waits
    out the processing and says how long it took (counts and `status`); members left in Error are findings
    naming the reason; a member in ActiveWithError is a finding in verify; a run that stops waiting names
    each member still waiting and where the group's processing is (QueuedForProcessing,
    ProcessingInProgress)."""
    from sandbox.testing import token

    knobs = f"{gcli.url}/sandbox/faults"
    rules = f"{gcli.url}/sandbox/tenants/{TARGET}/licensing"
    gcli("discover", "hillside")
    gcli("discover", "oakwood")
    pupil = _skus(gcli.url)["STANDARDWOFFPACK_STUDENT"]
    r = httpx.post(
        f"{gcli.url}/sandbox/tenants/{TARGET}/seats",
        json={pupil["skuPartNumber"]: pupil["consumedUnits"] + 2},
    )
    assert r.status_code == 200
    assert httpx.post(knobs, json={"group_licensing_delay_s": 3}).status_code == 200
    proc = gcli("run", "hillside", "--phase", "users", "--replan", "--skip-preflight", "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert isinstance(result["counts"]["licence_processing_s"], float)
    short = [f for f in result["failures"] if "(CountViolation)" in f["message"]]
    assert short and len(short) == result["counts"]["licence_problems"]
    status = gcli("status", "hillside").stdout
    assert "Entra licensed the group members in" in status
    assert f"{len(short)} user(s) without an active licence" in status
    # The report's accounts section: how long Entra took, and who is left without a licence, per state.
    md = gcli("report", "hillside", "--format", "md", "--out", "-").stdout
    took = result["counts"]["licence_processing_s"]
    assert f"Group licensing: Entra licensed the members in {took:.0f} s; {len(short)} user(s)" in md
    assert f"| Error: CountViolation | {len(short)} |" in md
    html = gcli("report", "hillside", "--format", "html", "--out", "-").stdout
    assert f'data-field="licence-processing-s" data-value="{took}"' in html
    assert f'data-field="without-licence" data-value="{len(short)}"' in html
    assert f'<td>Error: CountViolation</td><td class="num">{len(short)}</td>' in html
    # ActiveWithError: a staff member's next processing is spoilt; verify reports it, licence held.
    snap = snapshot(gcli.url)
    staff = next(g["id"] for g in snap["groups"] if g["mailNickname"] == "nllt-hillside-staff")
    member = snap["members"][staff][0]
    assert httpx.post(knobs, json={"group_licensing_delay_s": 0}).status_code == 200
    assert httpx.post(rules, json={"active_with_error": [member]}).status_code == 200
    with httpx.Client(base_url=f"{gcli.url}/v1.0") as c:
        c.headers["Authorization"] = f"Bearer {token(gcli.url, TARGET)}"
        assert c.delete(f"/groups/{staff}/members/{member}/$ref").status_code == 204
        bind = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member}"}
        assert c.post(f"/groups/{staff}/members/$ref", json=bind).status_code == 204
    verified = json.loads(gcli("verify", "hillside", "--json", check=False).stdout)
    spoilt = [d for d in verified["differences"] if "active with an error" in d["message"]]
    assert len(spoilt) == 1
    # The next users run finds it too: the report names the state with its error.
    rerun = gcli("run", "hillside", "--phase", "users", "--replan", "--skip-preflight", "--json", check=False)
    assert json.loads(rerun.stdout)["counts"]["licence_reasons"].get("Error: CountViolation") == len(short)
    md = gcli("report", "hillside", "--format", "md", "--out", "-").stdout
    assert "| ActiveWithError: " in md, md
    # A run that stops waiting: each member named, with where the group's processing is.
    assert httpx.post(knobs, json={"group_licensing_delay_s": 3600}).status_code == 200
    try:
        first = gcli(
            "run",
            "oakwood",
            "--phase",
            "users",
            "--replan",
            "--skip-preflight",
            "--licence-wait",
            "0",
            "--json",
            check=False,
        )
        waiting = [f for f in json.loads(first.stdout)["failures"] if "still being processed" in f["message"]]
        assert waiting and all(f["step"].startswith("licence:") for f in waiting)
        assert any("(the group is QueuedForProcessing)" in f["message"] for f in waiting)
        assert httpx.post(rules, json={"process": 1}).json()["processed"] == 1
        again = gcli(
            "run",
            "oakwood",
            "--phase",
            "users",
            "--replan",
            "--skip-preflight",
            "--licence-wait",
            "0",
            "--json",
            check=False,
        )
        later = json.loads(again.stdout)["failures"]
        assert any("(the group is ProcessingInProgress)" in f["message"] for f in later)
        md = gcli("report", "oakwood", "--format", "md", "--out", "-").stdout
        assert "Group licensing: Entra was still processing;" in md
        in_progress = [f for f in later if "(the group is ProcessingInProgress)" in f["message"]]
        assert f"| ProcessingInProgress | {len(in_progress)} |" in md
        assert f"; {len(later)} user(s) without an active licence." in md
        assert "licence_processing_s" not in json.loads(again.stdout)["counts"]
    finally:
        httpx.post(knobs, json={"group_licensing_delay_s": 0})
        httpx.post(rules, json={"process": True})
