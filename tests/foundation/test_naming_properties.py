"""Property-based: every name trust/ derives from any valid academy is valid for its Azure or Entra type,
distinct academies never share a name, and UPNs from any unicode name obey Graph's rules."""

from __future__ import annotations

import re
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.foundation.test_config_corpus import CONFIG
from trust.load import load_trust
from trust.model import AcademyFile

TRUST = load_trust(CONFIG)
NAMES = TRUST.names
BASE = TRUST.academies[0].model_dump(mode="json")

# Azure's documented rules, written out independently of trust/azure_rules.py.
AZURE = {
    "resource_group": re.compile(r"^[\w.()\-]{1,89}[\w()\-]$"),
    "virtual_network": re.compile(r"^[A-Za-z0-9][\w.\-]{0,62}[\w]$"),
    "storage_account": re.compile(r"^[a-z0-9]{3,24}$"),
    "key_vault": re.compile(r"^(?!.*--)[A-Za-z][A-Za-z0-9\-]{1,22}[A-Za-z0-9]$"),
    "budget": re.compile(r"^[\w\-]{1,63}$"),
    "network_security_group": re.compile(r"^[A-Za-z0-9][\w.\-]{0,78}[\w]$"),
    "peering": re.compile(r"^[A-Za-z0-9][\w.\-]{0,78}[\w]$"),
}
UPN_LOCAL = re.compile(r"^(?!\.)(?!.*\.\.)[A-Za-z0-9'.\-_!#^~]{1,64}(?<!\.)$")
MAIL_NICK = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]{1,64}$")

codes = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=9).map(
    lambda s: "a" + s
)
names = st.text(min_size=1, max_size=80).filter(lambda s: s.strip() and "\x00" not in s)


def academy(code: str, name: str = "Academy") -> AcademyFile:
    return AcademyFile.model_validate({**BASE, "code": code, "name": name})


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(code=codes)
def test_every_derived_azure_name_is_valid(code: str) -> None:
    for field, (kind, name) in NAMES.academy_azure_names(academy(code)).items():
        assert AZURE[kind].match(name), f"{field}: {name!r} breaks Azure's {kind} rule"


@settings(max_examples=200)
@given(a=codes, b=codes)
def test_distinct_academies_never_share_a_name(a: str, b: str) -> None:
    if a == b:
        return
    first, second = NAMES.academy_azure_names(academy(a)), NAMES.academy_azure_names(academy(b))
    for field in first:
        assert first[field][1] != second[field][1], f"{field} collides for {a} and {b}"
    assert NAMES.entra_group(academy(a), "staff")[1] != NAMES.entra_group(academy(b), "staff")[1]


@settings(max_examples=300)
@given(
    given_name=st.text(max_size=40),
    surname=st.text(max_size=40),
    nick=st.text(max_size=30),
    suffix=st.integers(min_value=0, max_value=999),
    source_id=st.one_of(st.none(), st.text(max_size=40)),
)
# Found by this test on a random seed: empty names and nickname '.' gave '.@northernlights.org.uk'.
@example(given_name="", surname="", nick=".", suffix=0, source_id=None)
@example(given_name="", surname="", nick="-_.", suffix=0, source_id="3f2b-..")
@example(given_name=".", surname="-", nick="", suffix=7, source_id="x")
def test_upns_from_any_unicode_name_obey_graph(
    given_name: str, surname: str, nick: str, suffix: int, source_id: str | None
) -> None:
    upn = NAMES.user_upn(TRUST.academies[0], given_name, surname, nick, suffix=suffix, source_id=source_id)
    local, _, domain = upn.rpartition("@")
    assert UPN_LOCAL.match(local), upn
    assert re.search(r"[a-z0-9]", local), f"{upn}: a local part of punctuation only"
    assert domain in TRUST.tenant.domains
    again = NAMES.user_upn(TRUST.academies[0], given_name, surname, nick, suffix=suffix, source_id=source_id)
    assert again == upn, "UPNs must be deterministic"


def test_nameless_users_fall_back_to_their_source_id_deterministically() -> None:
    a = TRUST.academies[0]
    first = NAMES.user_upn(a, "", "", ".", source_id="9d1c0f3e-0000-4000-8000-000000000001")
    second = NAMES.user_upn(a, None, None, "-", source_id="9d1c0f3e-0000-4000-8000-000000000002")
    assert first.startswith("user-") and second.startswith("user-")
    assert first != second, "two nameless users must not share a UPN"
    assert first == NAMES.user_upn(a, "", "", ".", source_id="9d1c0f3e-0000-4000-8000-000000000001")
    assert NAMES.user_upn(a, "Jo", "Bloggs", ".", source_id="x").startswith("jo.bloggs@")


@settings(max_examples=200)
@given(display=names, nick=st.text(max_size=80))
def test_group_names_are_valid_for_entra(display: str, nick: str) -> None:
    a = TRUST.academies[1]
    assert MAIL_NICK.match(NAMES.group_mail_nickname(a, nick))
    shown = NAMES.group_display_name(a, display)
    assert 0 < len(shown) <= 256


@settings(max_examples=100)
@given(
    code=codes, purpose=st.sampled_from(["staging", "Documents - hillside", "Shared Ümlaut Library!", "x"])
)
def test_storage_containers_are_valid(code: str, purpose: str) -> None:
    name = NAMES.storage_container(purpose)
    assert re.fullmatch(r"[a-z0-9](-?[a-z0-9]){2,62}", name), name
