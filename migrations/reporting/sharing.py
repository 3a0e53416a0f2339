"""The report's sharing section: grants carried into the trust tenant, and what was not carried and why."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrations.core.store import StateStore

# Inherited grants are counted, not listed: every item below a shared folder has them.
LISTED_EXCEPT = ("sharing-inherited",)
# Link restrictions Graph cannot set (or a grant cannot hold): carried as the stricter choice, not carried.
NARROWED = ("sharing-link-password", "sharing-link-blocks-download", "sharing-link-expiry")
AUDIENCE_RULE = (
    "Sharing keeps its audience: no copy grants more people than its source did; an academy-wide link goes "
    "to the academy's own people group, trust-wide only by the academy's decision; narrower only with a "
    "finding."
)


def sharing_summary(store: StateStore, code: str) -> dict[str, Any]:
    """{"carried": {kind: n}, "not_carried": [{"kind", "count", "why"}], "audience": {...},
    "refused": [{"path", "message", "handling"}], "findings": [...]}; {} before any permissions plan."""
    from migrations.permissions.plan import CARRIED_FINDINGS, SCOPE_LIMIT_KIND, audience_state, ours

    rows = store.rows(
        "SELECT kind, object_id, display, message, handling FROM share_findings WHERE academy = ? "
        "ORDER BY kind, display, object_id",
        (code,),
    )
    mine = ours(store, code)
    if not rows and not mine:
        return {}
    group, _ = audience_state(store, code)

    def kind(sig: list[str]) -> str:
        if sig[0] == "link":
            return "link-" + sig[2] + (" (trust-wide)" if sig[2] == "organization" else "")
        return "academy-group" if sig[0] == "group" and sig[1] == group else sig[0]

    carried = Counter(kind(r["sig"]) for r in mine.values())
    why: dict[str, Counter[str]] = {}
    for r in rows:
        if r["kind"] not in CARRIED_FINDINGS:
            why.setdefault(r["kind"], Counter())[r["handling"]] += 1
    found = Counter(r["kind"] for r in rows)
    audience = {
        "rule": AUDIENCE_RULE,
        "academy_group": carried.get("academy-group", 0),
        "trust_wide": found.get("sharing-trust-wide-link", 0),
        "restrictions_carried": sum(
            1 for r in mine.values() if r["sig"][0] == "link" and " until " in r["sig"][1]
        ),
        "restrictions_narrowed": sum(found.get(k, 0) for k in NARROWED),
    }
    return {
        "carried": dict(sorted(carried.items())),
        "audience": audience,
        "not_carried": [
            {"kind": k, "count": sum(c.values()), "why": c.most_common(1)[0][0]}
            for k, c in sorted(why.items())
        ],
        # Items SharePoint refused permissions of their own (the library's unique-scope limit): named one by
        # one, because each is an item its people cannot reach in the trust tenant until someone acts.
        "refused": [
            {"path": r["display"], "message": r["message"], "handling": r["handling"]}
            for r in rows
            if r["kind"] == SCOPE_LIMIT_KIND
        ],
        "findings": [
            {k: r[k] for k in ("kind", "object_id", "display", "message", "handling")}
            for r in rows
            if r["kind"] not in LISTED_EXCEPT
        ],
    }
