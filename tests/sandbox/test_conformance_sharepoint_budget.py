"""SharePoint's budgets as Microsoft documents them (learn.microsoft.com/sharepoint/dev/general-development/
how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online; docs/sandbox.md, "SharePoint budgets"):
throttled requests count towards usage, REST spends resource units, RateLimit-* headers from 80% of the app's
minute, the tenant's 5-minute limit, hourly ingress and egress, and the per-app tiers by licence count."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.pipeline import issue_token
from sandbox.settings import Budget, Settings, parse_budget
from sandbox.testing import SandboxURL, graph_client, running_sandbox
from sandbox.throttle import Throttle
from tests.identity.conftest import CONFIG, TARGET

SITE = "/sites/hillside-staff"


def _throttle(**settings: object) -> tuple[Throttle, list[float]]:
    now = [1000.0]
    return Throttle(Settings(**settings), clock=lambda: now[0]), now  # type: ignore[arg-type]


# ---- throttled requests count ----------------------------------------------------------------------------
def test_a_throttled_sharepoint_request_still_spends_its_units() -> None:
    """ "Throttled requests count towards usage limits, so failure to honor Retry-After may result in more
    throttling": a client retrying early is pushed further out; one that waits Retry-After is admitted."""
    t, now = _throttle(sharepoint_ru=parse_budget("10/60"))
    for _ in range(5):
        assert t.charge("t", "sharepoint", 2, False) is None
    first = t.charge("t", "sharepoint", 2, False)
    assert first is not None
    # Retrying at once, twice: each refusal spends 2 more units, so the wait grows.
    second = t.charge("t", "sharepoint", 2, False)
    third = t.charge("t", "sharepoint", 2, False)
    assert second is not None and third is not None and third >= second >= first
    usage = t._windows[("t", "app", "sp")].used
    assert usage == 16  # 10 admitted + 3 refused x 2
    # Honouring the last Retry-After is enough.
    now[0] += third
    assert t.charge("t", "sharepoint", 2, False) is None


def test_identity_refusals_still_spend_nothing() -> None:
    t, _ = _throttle(write_budget=parse_budget("2/10"))
    assert t.charge("t", "identity", 1, True) is None
    assert t.charge("t", "identity", 1, True) is None
    assert t.charge("t", "identity", 1, True) is not None
    assert t._windows[("t", "app", "writes")].used == 2


def test_a_sharing_call_refused_by_the_sharing_limit_still_counts() -> None:
    t, _ = _throttle(sharing_api=parse_budget("2/300"))
    assert t.decide_sharing("t").retry_after is None
    assert t.decide_sharing("t").retry_after is None
    assert t.decide_sharing("t").retry_after is not None
    assert t._windows[("t", "app", "sharing")].used == 3
    # The refused call's resource units count too (the pipeline spends them for it).
    t.spend_refused("t", 5)
    assert t._windows[("t", "app", "sp")].used == 5


# ---- tiers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("licences", "minute", "day", "tenant"),
    [
        (10, 1_250, 1_200_000, 18_750),
        (1_000, 1_250, 1_200_000, 18_750),  # "0 - 1,000": the band's top is in it
        (1_001, 2_500, 2_400_000, 37_500),
        (10_000, 3_750, 3_600_000, 56_250),
        (50_000, 5_000, 4_800_000, 75_000),
        (60_000, 6_250, 6_000_000, 93_750),
    ],
)
def test_sharepoint_tiers_by_licence_count(licences: int, minute: int, day: int, tenant: int) -> None:
    t = Throttle(Settings())
    t.set_tenant_size("x", 0, licences)
    assert t.sharepoint_budget("x") == Budget(minute, 60.0)
    assert t.sharepoint_daily("x") == Budget(day, 86_400.0)
    assert t.sharepoint_tenant("x") == Budget(tenant, 300.0)


# ---- tenant 5 minutes, ingress, egress -------------------------------------------------------------------
def test_tenant_five_minute_limit_is_shared_by_every_app() -> None:
    t, now = _throttle(sharepoint_ru=parse_budget("100/60"), sharepoint_tenant_ru=parse_budget("30/300"))
    for _ in range(10):
        assert t.decide("t", "sharepoint", 2, False, app_id="a").retry_after is None
    for _ in range(5):
        assert t.decide("t", "sharepoint", 2, False, app_id="b").retry_after is None
    refused = t.decide("t", "sharepoint", 2, False, app_id="c")
    assert refused.retry_after is not None and refused.scope == "Tenant/SharePoint/t"
    assert refused.rate_limit is None  # the RateLimit headers describe only the app's minute
    now[0] += 61  # every app's own minute is clear, the tenant's 5 minutes are not
    assert t.decide("t", "sharepoint", 2, False, app_id="d").retry_after is not None


def test_hourly_ingress_and_egress() -> None:
    t, now = _throttle(sharepoint_transfer=parse_budget("1000/3600"))
    assert t.decide("t", "sharepoint", 2, True, ingress=600).retry_after is None
    t.record_transfer("t", 600, 0)
    big = t.decide("t", "sharepoint", 2, True, ingress=600)
    assert big.retry_after is not None and big.information == "IngressLimitExceeded"
    assert t.decide("t", "sharepoint", 1, False).retry_after is None  # small requests still go in
    t.record_transfer("t", 0, 1_000)
    out = t.decide_transfer("t", 0)
    assert out.retry_after is not None and out.information == "EgressLimitExceeded"
    now[0] += 3_601
    assert t.decide_transfer("t", 0).retry_after is None


# ---- over HTTP: RateLimit headers, REST charged, egress on download URLs ---------------------------------
@pytest.fixture
def tight() -> Iterator[SandboxURL]:
    with running_sandbox(CONFIG, size=20, seed=5, sharepoint_ru="10/60") as url:
        yield url


def _rest(url: SandboxURL) -> httpx.Client:
    host = url.world.tenant(TARGET).drives.host
    tok = issue_token(
        url.world,
        TARGET,
        "00000000-0000-0000-0000-00000000c0de",
        audience=f"https://{host}",
        roles=["Sites.FullControl.All"],
        certificate=True,
    )
    return httpx.Client(base_url=f"{url}{SITE}/_api", headers={"Authorization": f"Bearer {tok}"})


def test_ratelimit_headers_from_eighty_percent_of_the_app_minute(tight: SandboxURL) -> None:
    with graph_client(tight, TARGET) as g:
        assert g.get("/sites", params={"search": "hillside-staff"}).status_code == 200  # 1 RU
        seen = []
        for _ in range(6):  # 7 RU in all: 70%, no headers yet
            r = g.get("/sites", params={"search": "x"})
            seen.append(r.headers.get("RateLimit-Limit"))
        assert seen == [None] * 6
        r = g.get("/sites", params={"search": "x"})  # 8 of 10: 80%
        assert r.headers["RateLimit-Limit"] == "10"
        assert r.headers["RateLimit-Remaining"] == "2"
        assert 1 <= int(r.headers["RateLimit-Reset"]) <= 61
        g.get("/sites", params={"search": "x"})
        g.get("/sites", params={"search": "x"})
        refused = g.get("/sites", params={"search": "x"})
        assert refused.status_code == 429
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"]


def test_sharepoint_rest_spends_resource_units(tight: SandboxURL) -> None:
    """ "Every request that an application makes across all API endpoints, including Microsoft Graph, CSOM,
    and REST, counts towards the application's usage"; REST "usually consume[s] more resource units"."""
    with _rest(tight) as rest:
        answers = [rest.get("/web") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5  # 2 RU each: the tenth unit is the fifth call
    assert answers[4].headers["RateLimit-Remaining"] == "0"
    assert answers[5].status_code == 429 and int(answers[5].headers["Retry-After"]) >= 1
    with graph_client(tight, TARGET) as g:
        # Graph and REST share the app's budget.
        assert g.get("/sites", params={"search": "x"}).status_code == 429


def test_ingress_limit_over_graph() -> None:
    with (
        running_sandbox(CONFIG, size=20, seed=5, sharepoint_transfer="2000/3600") as url,
        graph_client(url, TARGET) as g,
    ):
        sites = g.get("/sites", params={"search": "hillside-staff"}).json()["value"]
        drive = g.get(f"/sites/{sites[0]['id']}/drive").json()
        put = g.put(f"/drives/{drive['id']}/root:/egress.txt:/content", content=b"x" * 3000)
        assert put.status_code in (200, 201)
        # The upload's 3,000 bytes broke the hour's ingress: the next upload waits.
        again = g.put(f"/drives/{drive['id']}/root:/egress2.txt:/content", content=b"y" * 10)
        assert again.status_code == 429 and again.headers["x-ms-throttle-information"] == (
            "IngressLimitExceeded"
        )
