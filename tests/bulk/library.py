"""A large source library for bulk engine tests and benches: many small files and a few large ones, put
straight into the sandbox's source tenant (generated content: no memory cost), from a fixed seed."""

from __future__ import annotations

import random
from typing import Any

from sandbox import drives_content as content_mod
from sandbox.world import World

STAMP = "2024-03-0{d}T0{h}:1{m}:2{s}Z"


def seed_library(
    world: World, tenant_id: str, site: str, files: int, large: tuple[int, ...] = (), seed: int = 16
) -> dict[str, Any]:
    """`files` small files (1-16 KB) in folders of 100 under 'Bulk/', plus `large` files under 'Bulk/Large'.
    Returns {"files": n, "bytes": total}."""
    rng = random.Random(seed)
    tenant = world.tenant(tenant_id)
    assert tenant is not None
    store = tenant.drives
    lib = next(store.drives[d] for s in store.sites.values() if s["name"] == site for d in s["_drives"])
    root = store.items[lib["_root"]]
    bulk, _ = store.create_item(root, "Bulk", folder=True)
    total = 0

    def put(parent: dict[str, Any], name: str, size: int) -> None:
        nonlocal total
        key = f"bulk-{seed}-{name}-{size}"
        stamp = STAMP.format(
            d=rng.randint(1, 9), h=rng.randint(0, 9), m=rng.randint(0, 9), s=rng.randint(0, 9)
        )
        store.create_item(
            parent, name, folder=False, content=content_mod.generated(key, size),
            quick_xor=content_mod.generated_quick_xor(key, size),
            fs={"createdDateTime": stamp, "lastModifiedDateTime": stamp},
        )  # fmt: skip
        total += size

    folder = bulk
    for i in range(files):
        if i % 100 == 0:
            folder, _ = store.create_item(bulk, f"Batch {i // 100:03d}", folder=True)
        put(folder, f"note {i:05d}.txt", rng.randint(1024, 16 * 1024))
    if large:
        big, _ = store.create_item(bulk, "Large", folder=True)
        for j, size in enumerate(large):
            put(big, f"video {j}.mp4", size)
    world.dirty = True
    return {"files": files + len(large), "bytes": total}


def target_files(snapshot: dict[str, Any]) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Drive -> path -> (size, quickXorHash, created, modified) for the files of a drives snapshot. Drives are
    keyed by name and owner: a OneDrive's id differs between two sandboxes (it follows the new user's id)."""
    out: dict[str, dict[str, tuple[Any, ...]]] = {}
    for d in snapshot["drives"]["drives"]:
        owner = (d.get("owner") or {}).get("user") or {}
        key = d["id"] if d["driveType"] == "documentLibrary" else f"onedrive|{owner.get('displayName', '')}"
        files = {
            i["path"]: (
                i["size"],
                i["quickXorHash"],
                i["fileSystemInfo"]["createdDateTime"][:19],
                i["fileSystemInfo"]["lastModifiedDateTime"][:19],
            )
            for i in d["items"]
            if not i["folder"]
        }
        # Two owners can share a display name: number such drives in the order of their content.
        n = sum(1 for k in out if k.split("#")[0] == key)
        out[f"{key}#{n}" if n else key] = files
    groups: dict[str, list[dict[str, tuple[Any, ...]]]] = {}
    for k, v in out.items():
        groups.setdefault(k.split("#")[0], []).append(v)
    return {
        f"{k}#{i}" if i else k: v
        for k, vs in groups.items()
        for i, v in enumerate(sorted(vs, key=lambda f: repr(sorted(f.items()))))
    }
