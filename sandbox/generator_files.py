"""Synthetic OneDrives and shared libraries for the sandbox's tenants (deterministic for a seed).

Legacy content is seeded straight into the store, bypassing the rules Graph applies to new names, because
real legacy tenants hold content that older rules or sync clients let in: names SharePoint now refuses, paths
over the limit, Office lock files, a video too large to move. Large files are generated on the fly.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sandbox import drives_content as content_mod
from sandbox.drives_state import DriveStore
from sandbox.generator_sharing import seed_sharing
from sandbox.world import TenantState

EPOCH = datetime(2026, 9, 1)
MiB = 1024 * 1024

STAFF_FOLDERS = ("Lesson Plans", "Marking", "Reports", "CPD", "Trips")
STAFF_FILES = (
    "Seating plan {y}.xlsx",
    "Scheme of work {y}.docx",
    "Parents evening notes.docx",
    "Risk assessment - {t}.docx",
    "Intervention tracker.xlsx",
    "Assembly {t}.pptx",
    "Department budget {y}.xlsx",
    "Observation feedback.pdf",
)
TOPICS = ("Fractions", "Volcanoes", "The Tudors", "Forces", "Poetry", "Photosynthesis", "Rivers", "Algebra")
PUPIL_FILES = ("My homework.docx", "Science project.pptx", "Reading log.xlsx", "Art portfolio.pdf")


def _when(rng: random.Random, max_days: int = 1500) -> str:
    return (EPOCH - timedelta(days=rng.randint(20, max_days), seconds=rng.randint(0, 86_399))).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


class _Tree:
    """Adds folders and files to one drive, legacy rules (none) applied."""

    def __init__(self, store: DriveStore, drive: dict[str, Any], rng: random.Random, prefix: str):
        self.store, self.drive, self.rng, self.prefix = store, drive, rng, prefix
        self.n = 0

    def folder(self, path: str) -> dict[str, Any]:
        cur = self.store.items[self.drive["_root"]]
        for part in [p for p in path.split("/") if p]:
            nxt = self.store.child(cur, part)
            if nxt is None:
                when = _when(self.rng)
                nxt, _ = self.store.create_item(
                    cur,
                    part,
                    folder=True,
                    validate=False,
                    created=when,
                    fs={"createdDateTime": when, "lastModifiedDateTime": when},
                )
            cur = nxt
        return cur

    def file(self, path: str, size: int | None = None, seed: str | None = None) -> dict[str, Any]:
        folder_path, _, name = path.rpartition("/")
        parent = self.folder(folder_path)
        self.n += 1
        size = self.rng.randint(2_000, 400_000) if size is None else size
        created = _when(self.rng)
        modified = min(created, _when(self.rng, 400)) if self.rng.random() < 0.2 else created
        item, _ = self.store.create_item(
            parent,
            name,
            folder=False,
            content=content_mod.generated(seed or f"{self.prefix}:{self.n}", size),
            validate=False,
            created=created,
            fs={"createdDateTime": created, "lastModifiedDateTime": max(created, modified)},
        )
        return item


def _library(tree: _Tree, academy: Any, size: int) -> None:
    rng = tree.rng
    code = academy.code
    years = (
        ("Year 7", "Year 8", "Year 9")
        if str(getattr(academy.kind, "value", "")) == "secondary"
        else (
            "Reception",
            "Year 1",
            "Year 2",
        )
    )
    tree.file("Policies/Safeguarding Policy.pdf")
    tree.file("Policies/Term Dates 2024-25.pdf", 48_211, seed=f"{code}:term-dates")
    tree.file("Policies/Behaviour Policy.docx")
    for year in years:
        for topic in rng.sample(TOPICS, 2):
            tree.file(f"Curriculum/{year}/{topic}/{topic} overview.docx")
            tree.file(f"Curriculum/{year}/{topic}/{topic} worksheet.pdf")
    for n in range(max(2, size // 60)):
        tree.file(f"Governors/Minutes {2021 + n % 4}-{22 + n % 4}/Full governing body {n + 1}.docx")
    # Names SharePoint refuses or changes; each has a recorded rule in trustfold, none is dropped.
    tree.file("Admin/Budget: 2024?.xlsx")
    tree.file('Admin/Notes "draft" v2.docx')
    tree.file("Admin/ Leading space.docx")
    tree.file("Admin/Trailing space.docx ")
    tree.file("Admin/~$Timetable.docx", 162)
    tree.file("Admin/CON.txt", 900)
    tree.file("Admin/desktop.ini", 120)
    tree.file("Old intranet/_vti_cnf/index.htm", 3_000)
    tree.file("Admin/.lock", 64)
    # Zero-byte files and empty folders.
    tree.file("Admin/placeholder.txt", 0)
    tree.file("Curriculum/Empty register.csv", 0)
    tree.folder("Archive/2019-20")
    tree.folder("Scans")
    # A deep path over SharePoint's 400-character limit once under the trust's site.
    deep = "/".join(
        f"Subject leadership folder {n} - monitoring, evaluation and review documents" for n in range(5)
    )
    tree.file(f"Curriculum/{deep}/Deep review notes.docx")
    # Media: one large video generated on the fly, one beyond the 250 GB file limit.
    tree.file("Media/Sports Day 2024.mp4", max(8 * MiB, size * 96 * 1024))
    tree.file("Media/Whole school production 2023 (4K master).mov", 300 * 1024**3)


def seed_files(
    tenant: TenantState, academy: Any, users: list[dict[str, Any]], rng: random.Random, size: int
) -> None:
    """OneDrives for staff (and some pupils) and the academy's shared libraries named in its config."""
    store: DriveStore = tenant.drives
    initial = next((d["id"] for d in tenant.domains if d["id"].endswith(".onmicrosoft.com")), None)
    if initial:
        store.set_host(initial)
    files = academy.files
    for lib in files.libraries:
        site = store.add_site(lib.source_site, f"{academy.name} {lib.source_site.title()}", _when(rng, 3000))
        drive = store.add_library(site, lib.source_library, site["createdDateTime"])
        _library(_Tree(store, drive, rng, f"{academy.code}:lib:{lib.source_site}"), academy, size)
    kind = str(getattr(academy.kind, "value", academy.kind))
    for user in users:
        role = user.get("role")
        if role == "staff":
            drive = store.add_user_drive(user, _when(rng, 3000))
            tree = _Tree(store, drive, rng, f"{academy.code}:od:{user['id']}")
            for _ in range(rng.randint(1, 4)):
                name = rng.choice(STAFF_FILES).format(
                    y=rng.choice(("2023", "2024", "2025")), t=rng.choice(TOPICS)
                )
                folder = rng.choice(STAFF_FOLDERS) + "/" if rng.random() < 0.4 else ""
                if store.child(tree.folder(folder), name.rpartition("/")[2]) is None:
                    tree.file(folder + name)
        elif role == "pupil" and kind != "special" and rng.random() < 0.1:
            # Special schools: pupils keep no OneDrive content (their work lives in the records library).
            drive = store.add_user_drive(user, _when(rng, 1500))
            _Tree(store, drive, rng, f"{academy.code}:od:{user['id']}").file(rng.choice(PUPIL_FILES))
    seed_sharing(tenant, users, rng)  # last: the files drawn above stay as they were


def seed_target_files(target: TenantState, trust: Any, rng: random.Random) -> None:
    """The trust's libraries for each academy, holding a little content before any migration: a welcome page,
    a trust policy, one file colliding by name with an academy's (different content), one identical."""
    store: DriveStore = target.drives
    initial = next((d["id"] for d in target.domains if d["id"].endswith(".onmicrosoft.com")), None)
    if initial:
        store.set_host(initial)
    for academy in trust.academies:
        for lib in academy.files.libraries:
            site = store.add_site(
                lib.target_site, f"{academy.name} {lib.target_site.split('-')[-1].title()}", _when(rng, 700)
            )
            drive = store.add_library(site, lib.target_library, site["createdDateTime"])
            tree = _Tree(store, drive, rng, f"trust:{lib.target_site}")
            tree.file(f"Welcome to {academy.name}.docx")
            tree.file("Policies/Trust Data Protection Policy.pdf")
            tree.file("Policies/Safeguarding Policy.pdf")
            tree.file("Policies/Term Dates 2024-25.pdf", 48_211, seed=f"{academy.code}:term-dates")
