"""The teams phase end to end through the CLI against the sandbox, in the order an academy goes through it:
class teams arrive as class teams with their channels and history (original authors and times, replies),
migration mode stays open across passes, a second pass imports only what is new, verify is clean, the
cut-over pass completes every channel, and rollback removes exactly what trustfold made."""

from __future__ import annotations

from typing import Any

from tests.teams.conftest import ACADEMY, World


def _pairs(w: World) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(source team, target team) for every source team: the target's name is the source's, with the
    academy's prefix the trust's naming rules give groups."""
    source, target = w.teams(w.source), w.teams()
    assert source, "the generator made no teams at hillside"
    return [
        (s, next((t for n, t in target.items() if n == name or n.endswith(f" {name}")), {}))
        for name, s in sorted(source.items())
    ]


def _stamps(msgs: list[dict[str, Any]]) -> list[str]:
    return sorted(m["createdDateTime"] for m in msgs)


def test_discovery_finds_class_teams_and_groups_leave_them(migrated: World) -> None:
    found = migrated.rows("SELECT data FROM inventory WHERE academy = 'hillside' AND kind = 'team'")
    assert any('"educationClass"' in r["data"] for r in found)
    # The groups phase made no plain group for a class: the teams phase makes it as a class.
    classes = {
        r["object_id"]
        for r in migrated.rows("SELECT object_id, data FROM inventory WHERE kind = 'team' AND removed = 0")
        if '"educationClass"' in r["data"]
    }
    made = {r["step_key"] for r in migrated.rows("SELECT step_key FROM journal WHERE phase = 'groups'")}
    assert classes and not {f"group:{c}" for c in classes} & made


def test_teams_arrive_with_channels_and_history(migrated: World) -> None:
    out = migrated.run()
    assert out["status"] == "succeeded", out
    people = migrated.people()
    tabs_seen = 0
    for src, dst in _pairs(migrated):
        assert dst, f"team '{src['displayName']}' was not made in the trust"
        assert dst.get("specialization") == src.get("specialization"), src["displayName"]
        src_channels, dst_channels = (
            migrated.channels(src["id"], migrated.source),
            migrated.channels(dst["id"]),
        )
        assert set(dst_channels) == set(src_channels)
        for name, sc in src_channels.items():
            assert dst_channels[name].get("membershipType") == sc.get("membershipType")
            before = migrated.messages(src["id"], sc["id"], migrated.source)["value"]
            after = migrated.messages(dst["id"], dst_channels[name]["id"])
            # Migration mode stays open until the cut-over pass.
            assert after["migrationMode"] == ("inProgress" if before else after["migrationMode"])
            assert _stamps(after["value"]) == _stamps(before), f"{src['displayName']} / {name}"
            authors = {m["createdDateTime"]: m["from"]["user"]["id"] for m in after["value"]}
            for m in before:
                mapped = people.get(m["from"]["user"]["id"])
                if mapped:
                    assert authors[m["createdDateTime"]] == mapped
            replies = [m for m in after["value"] if m.get("replyToId")]
            assert len(replies) == len([m for m in before if m.get("replyToId")])
            # Website tabs to the open web are carried as they are.
            web = "com.microsoft.teamspace.tab.web"
            tabs = migrated.get(
                f"/teams/{src['id']}/channels/{sc['id']}/tabs?$expand=teamsApp", migrated.source
            )
            wanted = {
                (t["displayName"], t["configuration"]["websiteUrl"])
                for t in tabs["value"]
                if t["teamsApp"]["id"] == web
            }
            got = migrated.get(f"/teams/{dst['id']}/channels/{dst_channels[name]['id']}/tabs")["value"]
            assert wanted <= {(t["displayName"], t["configuration"]["websiteUrl"]) for t in got}
            tabs_seen += len(wanted)
    assert tabs_seen, "no website tab at source: the tab check checked nothing"


def test_a_second_pass_imports_only_new_messages(migrated: World) -> None:
    src, dst = next((s, d) for s, d in _pairs(migrated) if s.get("specialization") == "educationClass")
    general = migrated.get(f"/teams/{src['id']}/primaryChannel", migrated.source)
    teacher = next(iter(migrated.messages(src["id"], general["id"], migrated.source)["value"]))["from"][
        "user"
    ]
    migrated.post_at_source(
        src["id"], general["id"], {"from": teacher["id"], "content": "Mock exams start on Monday."}
    )
    out = migrated.run()
    assert out["status"] == "succeeded", out
    assert out["counts"]["messages"] == 1, out["counts"]
    target_general = migrated.get(f"/teams/{dst['id']}/primaryChannel")
    after = migrated.messages(dst["id"], target_general["id"])["value"]
    assert sum("Mock exams" in m["body"]["content"] for m in after) == 1


def test_verify_is_clean(migrated: World) -> None:
    out = migrated.cli("verify", ACADEMY, "--json", check=False)
    import json

    result = json.loads(out.stdout)
    assert result["teams"]["differences"] == [], result["teams"]
    assert result["teams"]["checked"] > 0


def test_the_report_shows_teams_and_what_was_not_carried(migrated: World) -> None:
    import json

    report = json.loads(migrated.cli("report", ACADEMY, "--format", "json", "--out", "-").stdout)
    teams = report["academies"][0]["teams"]
    # The generator gives hillside (a primary, years R to 6) one class team per year group and a staff team.
    assert teams["teams"] == 8 and teams["class_teams"] == 7
    assert teams["messages"] > 0 and teams["completed"] == 0
    kinds = {x["kind"] for x in teams["not_carried"]}
    assert {"assignments", "class-notebook", "planner"} <= kinds
    html = migrated.cli("report", ACADEMY, "--format", "html", "--out", "-").stdout
    assert 'data-field="class-teams">7<' in html


def test_completion_is_a_planning_option_a_reviewed_plan_must_carry(migrated: World) -> None:
    migrated.cli("plan", ACADEMY, "--phase", "teams")
    refused = migrated.cli("run", ACADEMY, "--phase", "teams", "--complete", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "complete=False" in refused.stderr and "--complete" in refused.stderr
    assert "Traceback" not in refused.stderr
    modes = {
        migrated.messages(d["id"], c["id"])["migrationMode"]
        for _s, d in _pairs(migrated)
        for c in migrated.channels(d["id"]).values()
    }
    assert "completed" not in modes  # refused before anything was sent


def test_the_cut_over_pass_completes_every_channel_and_later_posts_are_findings(migrated: World) -> None:
    out = migrated.run("--complete")
    assert out["status"] == "succeeded", out
    for _src, dst in _pairs(migrated):
        for name, channel in migrated.channels(dst["id"]).items():
            mode = migrated.messages(dst["id"], channel["id"])["migrationMode"]
            assert mode == "completed", f"{dst['displayName']} / {name}: {mode}"
    src, _ = next((s, d) for s, d in _pairs(migrated) if s.get("specialization") == "educationClass")
    general = migrated.get(f"/teams/{src['id']}/primaryChannel", migrated.source)
    teacher = next(iter(migrated.messages(src["id"], general["id"], migrated.source)["value"]))["from"][
        "user"
    ]
    migrated.post_at_source(src["id"], general["id"], {"from": teacher["id"], "content": "Too late."})
    again = migrated.run()
    assert again["counts"]["messages"] == 0
    kinds = {r["kind"] for r in migrated.rows("SELECT kind FROM team_findings")}
    assert "after-cut-over" in kinds


def test_rollback_removes_what_trustfold_made(migrated: World) -> None:
    classes_before = {c["id"] for c in migrated.get("/education/classes")["value"]}
    made = {
        r["target_id"]
        for r in migrated.rows(
            "SELECT target_id FROM journal WHERE phase = 'teams' AND op = 'create-class' AND event = 'done'"
        )
    }
    assert made and made <= classes_before
    migrated.cli("rollback", ACADEMY, "--phase", "teams", "--yes")
    classes_after = {c["id"] for c in migrated.get("/education/classes")["value"]}
    assert classes_after == classes_before - made
    # Standard teams stay on their groups (no Graph call takes a team off a group); the channels trustfold
    # created in them are gone.
    for src, dst in _pairs(migrated):
        if dst and src.get("specialization") != "educationClass":
            assert set(migrated.channels(dst["id"])) == {"General"}
