"""Application roles the Teams and education routes need: the Application row of each page's permissions
table (least and higher privileged). sandbox/tenancy.py puts these rows first, before the /groups rows that
would otherwise take /groups/{id}/team."""

from __future__ import annotations

_GET, _WRITE = "GET", "POST PATCH PUT DELETE"
_T = r"^/v1\.0/teams/[^/]+"
_CH = _T + r"/channels/[^/]+"
_TEAM_READ = (
    "Team.ReadBasic.All",
    "TeamSettings.Read.All",
    "TeamSettings.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
_EDU_READ = ("EduRoster.ReadBasic.All", "EduRoster.Read.All", "EduRoster.ReadWrite.All")

# (methods, path pattern, roles, page)
TEAMS_RULES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        _GET,
        _CH + r"/messages(/|$)",
        ("ChannelMessage.Read.All", "ChannelMessage.ReadWrite.All"),
        "channel-list-messages",
    ),
    # App-only message POST exists only for import (teams-import-messages).
    ("POST", _CH + r"/messages(/[^/]+/replies)?$", ("Teamwork.Migrate.All",), "teams-import-messages"),
    (
        "POST",
        _CH + r"/(startMigration|completeMigration)$",
        ("Teamwork.Migrate.All",),
        "channel-startmigration",
    ),
    ("POST", _T + r"/completeMigration$", ("Teamwork.Migrate.All",), "team-completemigration"),
    (
        _GET,
        _CH + r"/tabs(/|$)",
        ("TeamsTab.Read.All", "TeamsTab.ReadWriteForTeam.All", "TeamsTab.ReadWrite.All"),
        "channel-list-tabs",
    ),
    (
        _WRITE,
        _CH + r"/tabs(/|$)",
        ("TeamsTab.Create", "TeamsTab.ReadWriteForTeam.All", "TeamsTab.ReadWrite.All"),
        "channel-post-tabs",
    ),
    (
        _GET,
        _CH + r"/filesFolder$",
        # The page lists Files.* and (deprecated) Group.*; no Sites.* role.
        ("Files.Read.All", "Files.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All"),
        "channel-get-filesfolder",
    ),
    (
        _GET,
        _CH + r"/members(/|$)",
        ("ChannelMember.Read.All", "ChannelMember.ReadWrite.All"),
        "channel-list-members",
    ),
    (
        "POST",
        _CH + r"/members$",
        ("ChannelMember.ReadWrite.Group", "ChannelMember.ReadWrite.All"),
        "channel-post-members",
    ),
    (
        "DELETE",
        _CH + r"$",
        ("Channel.Delete.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "channel-delete",
    ),
    (
        "PATCH",
        _CH + r"$",
        ("ChannelSettings.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "channel-patch",
    ),
    (
        _GET,
        _T + r"/(channels|primaryChannel)(/|$)",
        (
            "Channel.ReadBasic.All",
            "ChannelSettings.Read.All",
            "ChannelSettings.ReadWrite.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        "channel-list",
    ),
    (
        "POST",
        _T + r"/channels$",
        ("Channel.Create", "Teamwork.Migrate.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "channel-post",
    ),
    (_GET, _T + r"/members(/|$)", ("TeamMember.Read.All", "TeamMember.ReadWrite.All"), "team-list-members"),
    (
        _GET,
        _T + r"/installedApps(/|$)",
        ("TeamsAppInstallation.ReadForTeam.All", "TeamsAppInstallation.ReadWriteForTeam.All"),
        "team-list-installedapps",
    ),
    (
        "PATCH",
        _T + r"$",
        ("TeamSettings.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "team-update",
    ),
    (_GET, _T + r"(/operations/[^/]+)?$", _TEAM_READ, "team-get"),
    (
        _GET,
        r"^/v1\.0/teams/?$",
        (
            "Team.ReadBasic.All",
            "TeamSettings.Read.All",
            "TeamSettings.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        "teams-list",
    ),
    (
        "POST",
        r"^/v1\.0/teams/?$",
        ("Team.Create", "Teamwork.Migrate.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "team-post",
    ),
    (
        "PUT",
        r"^/v1\.0/groups/[^/]+/team$",
        ("Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "team-put-teams",
    ),
    (_GET, r"^/v1\.0/groups/[^/]+/team$", _TEAM_READ, "team-get"),
    (_GET, r"^/v1\.0/education/classes(/|$)", _EDU_READ, "educationroot-list-classes"),
    (_WRITE, r"^/v1\.0/education/classes(/|$)", ("EduRoster.ReadWrite.All",), "educationclass-post"),
)
