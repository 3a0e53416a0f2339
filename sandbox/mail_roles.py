"""Application permissions of the mail endpoints, as (methods, path pattern, roles, page) rows that
sandbox/tenancy.py turns into its route rules (first match wins; each row is the application row of the
page's permissions table).

- mailbox-exportitems: MailboxItem.Export.All, higher MailboxItem.ImportExport.All.
- mailbox-createimportsession: MailboxItem.ImportExport.All ("Higher privileged: Not available").
- mailboxfolder-delta (and list/get folders): MailboxFolder.Read.All, higher MailboxFolder.ReadWrite.All;
  creating, renaming and deleting folders: MailboxFolder.ReadWrite.All.
- mailboxitem-delta, list/get items: MailboxItem.Read.All (the permissions reference: "get mailbox item
  properties; get items added, deleted or updated in a folder"); the import/export roles do not read items.
- mailboxfolder-delete-items: MailboxItem.ReadWrite.All ("Higher privileged: Not available").
- usersettings-list-exchange: User.Read.All, higher User.ReadWrite.All (the page's permissions table).
- user-list-mailfolders / mailfolder-list-messages / message-get: Mail.ReadBasic.All lists folders but not
  bodies, so messages need Mail.Read or Mail.ReadWrite; user-list-events: Calendars.Read(Write);
  user-list-contacts: Contacts.Read(Write).
"""

from __future__ import annotations

_MBX = r"^/v1\.0/admin/exchange/mailboxes/[^/]+"
_ITEMS = r"/folders/[^/]+(/childFolders/[^/]+)*/items"

MAIL_ROLES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "POST",
        _MBX + r"/exportItems$",
        ("MailboxItem.Export.All", "MailboxItem.ImportExport.All"),
        "mailbox-exportitems",
    ),
    (
        "POST",
        _MBX + r"/createImportSession$",
        ("MailboxItem.ImportExport.All",),
        "mailbox-createimportsession",
    ),
    ("DELETE", _MBX + _ITEMS + r"/[^/]+$", ("MailboxItem.ReadWrite.All",), "mailboxfolder-delete-items"),
    ("GET", _MBX + _ITEMS + r"(/|$)", ("MailboxItem.Read.All",), "mailboxitem-delta"),
    (
        "GET",
        _MBX + r"(/folders(/|$)|$)",
        ("MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All"),
        "mailboxfolder-delta",
    ),
    (
        "POST PATCH PUT DELETE",
        _MBX + r"/folders(/|$)",
        ("MailboxFolder.ReadWrite.All",),
        "mailbox-post-folders",
    ),
    (
        "GET POST PATCH PUT DELETE",
        r"^/v1\.0/admin/exchange(/|$)",
        ("MailboxItem.ImportExport.All",),
        "mailbox-createimportsession",
    ),
    (
        "GET",
        r"^/v1\.0/users/[^/]+/settings/exchange$",
        ("User.Read.All", "User.ReadWrite.All"),
        "usersettings-list-exchange",
    ),
    (
        "GET",
        r"^/v1\.0/users/[^/]+/mailFolders/?$",
        ("Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"),
        "user-list-mailfolders",
    ),
    (
        "GET",
        r"^/v1\.0/users/[^/]+/(mailFolders|messages)(/|$)",
        ("Mail.Read", "Mail.ReadWrite"),
        "mailfolder-list-messages",
    ),
    (
        "GET",
        r"^/v1\.0/users/[^/]+/(events|calendar)(/|$)",
        ("Calendars.Read", "Calendars.ReadWrite"),
        "user-list-events",
    ),
    (
        "GET",
        r"^/v1\.0/users/[^/]+/contacts(/|$)",
        ("Contacts.Read", "Contacts.ReadWrite"),
        "user-list-contacts",
    ),
)
