"""Teams in a tenant: teams on Microsoft 365 groups, channels with their files folders, tabs, channel messages
with replies and hosted contents, migration mode, and education classes' extra properties.

Objects are Graph JSON dicts; keys starting with "_" are the sandbox's own bookkeeping and never rendered.
A team's id is its group's id (learn.microsoft.com/graph/api/resources/team: "the same as the group id"), so
a team lives exactly as long as its group: deleting the group deletes the team (team-delete says to delete
the group), restoring the group restores it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.errors import GraphError

# Team settings a team carries (learn.microsoft.com/graph/api/resources/team, properties), with the
# defaults Teams gives a new team.
SETTINGS_DEFAULTS: dict[str, dict[str, Any]] = {
    "memberSettings": {
        "allowCreateUpdateChannels": True,
        "allowCreatePrivateChannels": True,
        "allowDeleteChannels": True,
        "allowAddRemoveApps": True,
        "allowCreateUpdateRemoveTabs": True,
        "allowCreateUpdateRemoveConnectors": True,
    },
    "guestSettings": {"allowCreateUpdateChannels": False, "allowDeleteChannels": False},
    "messagingSettings": {
        "allowUserEditMessages": True,
        "allowUserDeleteMessages": True,
        "allowOwnerDeleteMessages": True,
        "allowTeamMentions": True,
        "allowChannelMentions": True,
    },
    "funSettings": {
        "allowGiphy": True,
        "giphyContentRating": "moderate",
        "allowStickersAndMemes": True,
        "allowCustomMemes": True,
    },
}
GIPHY_RATINGS = ("moderate", "strict")
TEMPLATES = ("standard", "educationClass", "educationStaff", "educationProfessionalLearningCommunity")
# specialization by template (learn.microsoft.com/graph/api/resources/team, teamSpecialization).
SPECIALIZATION = {
    "standard": "none",
    "educationClass": "educationClass",
    "educationStaff": "educationStaff",
    "educationProfessionalLearningCommunity": "educationProfessionalLearningCommunity",
}
MEMBERSHIP_TYPES = ("standard", "private", "shared")
# Apps a class team comes with (Teams for Education: Assignments and the Class Notebook), by teamsApp id.
ASSIGNMENTS_APP = {"id": "66aeee93-507d-479a-a3ef-8f494af43945", "displayName": "Assignments"}
CLASS_NOTEBOOK_APP = {"id": "0d820ecd-def2-4297-adad-78056cde7c78", "displayName": "OneNote"}
# Built-in tab apps (learn.microsoft.com/graph/teams-configuring-builtin-tabs).
TAB_APPS = {
    "com.microsoft.teamspace.tab.web": "Website",
    "com.microsoft.teamspace.tab.file.staticviewer.word": "Word",
    "com.microsoft.teamspace.tab.file.staticviewer.excel": "Excel",
    "com.microsoft.teamspace.tab.file.staticviewer.powerpoint": "PowerPoint",
    "com.microsoft.teamspace.tab.file.staticviewer.pdf": "PDF",
    "com.microsoft.teamspace.tab.file.staticviewer.visio": "Visio",
    CLASS_NOTEBOOK_APP["id"]: "OneNote",
    ASSIGNMENTS_APP["id"]: "Assignments",
}
# Channel names (learn.microsoft.com/microsoftteams/limits-specifications-teams, channel names): at most 50
# characters, none of ~ # % & * { } + / \ : < > ? | ' " , .., not starting with _ or ., not ending with .
CHANNEL_NAME_MAX = 50
_CHANNEL_FORBIDDEN = re.compile(r"[~#%&*{}+/\\:<>?|'\",]|\.\.")
MIGRATION_BANNED_APPS = ()


def now_ms() -> str:
    """A chatMessage timestamp: UTC with milliseconds, as Teams writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise GraphError(400, "BadRequest", f"Invalid value for '{field}': a date and time is expected.")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid value '{value[:40]}' for '{field}'.") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC)


def iso_ms(stamp: datetime) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def epoch_ms(stamp: datetime) -> int:
    return int(stamp.timestamp() * 1000)


def channel_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return "Channel name cannot be empty."
    if len(name) > CHANNEL_NAME_MAX:
        return f"Channel name cannot be longer than {CHANNEL_NAME_MAX} characters."
    if _CHANNEL_FORBIDDEN.search(name) or name[0] in "_." or name.endswith("."):
        return "Channel name contains invalid characters."
    return None


def drive_stamp(stamp: str) -> str:
    """A Teams timestamp (milliseconds) as SharePoint writes its own (seconds)."""
    return stamp[:19] + "Z"


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class TeamsStore:
    """One tenant's teams, channels, tabs, messages, async operations, education class properties and the
    apps Microsoft approved for protected Teams APIs."""

    def __init__(self) -> None:
        self.teams: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, dict[str, Any]]] = {}  # channel id -> message id -> message
        self.hosted: dict[str, dict[str, Any]] = {}  # hosted content key -> {contentType, bytes (b64)}
        self.tabs: dict[str, dict[str, dict[str, Any]]] = {}  # channel id -> tab id -> tab
        self.operations: dict[str, dict[str, Any]] = {}
        self.classes: dict[str, dict[str, Any]] = {}  # group id -> educationClass properties
        self.teachers: dict[str, dict[str, None]] = {}  # class id -> teacher ids (ordered set)
        self.approved_apps: dict[str, None] = {}  # protected-API approval by app id
        # Ids are numbered per tenant, so a generated world is the same for the same seed.
        self.counter = 0
        self.tenant_id = ""

    def new_id(self, kind: str) -> str:
        self.counter += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"teams/{self.tenant_id}/{kind}/{self.counter}"))

    def new_channel_id(self) -> str:
        return f"19:{self.new_id('channel').replace('-', '')}@thread.tacv2"

    # ---- lookups ---------------------------------------------------------------------------------------
    def channels_of(self, team_id: str) -> list[dict[str, Any]]:
        return [c for c in self.channels.values() if c["_team"] == team_id]

    def channel(self, team_id: str, cid: str) -> dict[str, Any]:
        ch = self.channels.get(cid)
        if ch is None or ch["_team"] != team_id:
            raise GraphError(404, "NotFound", f"Channel {cid[:80]} not found in team {team_id[:40]}.")
        return ch

    def general(self, team_id: str) -> dict[str, Any]:
        return next(c for c in self.channels_of(team_id) if c.get("_general"))

    def message(self, cid: str, mid: str) -> dict[str, Any]:
        msg = self.messages.get(cid, {}).get(mid)
        if msg is None:
            raise GraphError(404, "NotFound", f"Message {mid[:40]} not found.")
        return msg

    def top_level(self, cid: str) -> list[dict[str, Any]]:
        """Root messages, newest first (channel-list-messages orders by last activity, newest first)."""
        roots = [m for m in self.messages.get(cid, {}).values() if not m.get("replyToId")]
        return sorted(roots, key=lambda m: (m["_activity"], m["id"]), reverse=True)

    def replies(self, cid: str, mid: str) -> list[dict[str, Any]]:
        found = [m for m in self.messages.get(cid, {}).values() if m.get("replyToId") == mid]
        return sorted(found, key=lambda m: m["id"], reverse=True)

    # ---- persistence -----------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "teams": self.teams,
            "channels": self.channels,
            "messages": self.messages,
            "hosted": self.hosted,
            "tabs": self.tabs,
            "operations": self.operations,
            "classes": self.classes,
            "teachers": {k: list(v) for k, v in self.teachers.items()},
            "approved_apps": list(self.approved_apps),
            "counter": self.counter,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TeamsStore:
        s = cls()
        s.teams = dict(state.get("teams") or {})
        s.channels = dict(state.get("channels") or {})
        s.messages = {k: dict(v) for k, v in (state.get("messages") or {}).items()}
        s.hosted = dict(state.get("hosted") or {})
        s.tabs = {k: dict(v) for k, v in (state.get("tabs") or {}).items()}
        s.operations = dict(state.get("operations") or {})
        s.classes = dict(state.get("classes") or {})
        s.teachers = {k: dict.fromkeys(v) for k, v in (state.get("teachers") or {}).items()}
        s.approved_apps = dict.fromkeys(state.get("approved_apps") or [])
        s.counter = int(state.get("counter") or 0)
        return s

    def snapshot(self) -> dict[str, Any]:
        """Stable, diffable JSON of the teams (sorted), without message bodies' hosted bytes."""
        return {
            "teams": {k: _public(v) for k, v in sorted(self.teams.items())},
            "channels": {k: _public(v) for k, v in sorted(self.channels.items())},
            "messages": {
                cid: [_public(m) for _, m in sorted(msgs.items())]
                for cid, msgs in sorted(self.messages.items())
            },
            "classes": dict(sorted(self.classes.items())),
        }


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(obj.items()) if not k.startswith("_")}


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
