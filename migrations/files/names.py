"""SharePoint's naming and size rules, and the deterministic rule trustfold applies to each problem.

Rules follow Microsoft's "Restrictions and limitations in OneDrive and SharePoint": characters
" * : < > ? / \\ | are refused, as are leading and trailing spaces, the names .lock, CON, PRN, AUX, NUL,
COM0-9, LPT0-9 and desktop.ini, names beginning ~$, any name containing _vti_, and a folder named "forms" at
the root of a library; a decoded path may hold at most 400 characters; a file at most 250 GB. Nothing is
dropped silently: every item these rules touch becomes a finding saying what happened to it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from migrations.safety.sanitise import BIDI, CONTROLS, ZERO_WIDTH, name_problems

FORBIDDEN = '"*:<>?/\\|'
RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{n}" for p in ("com", "lpt") for n in range(10)}
MAX_PATH = 400
HARD_MAX_FILE = 250 * 1024**3
LONG_PATHS_FOLDER = "Long paths"


@dataclass(frozen=True)
class Renamed:
    name: str
    reason: str  # "" when the name is kept


def safe_name(name: str, *, library_root: bool = False) -> Renamed:
    """The name SharePoint will accept, changed as little as possible, and why it changed."""
    reasons: list[str] = []
    # Spoofing characters first: bidi controls reorder what the user sees ('\u202etxt.exe' shows as
    # 'exe.txt') and zero-width characters hide differences, so they are removed and named in the finding.
    spoofing = [c for c in name if c in BIDI or c in ZERO_WIDTH]
    if spoofing:
        reasons.append("spoofing characters removed (" + ", ".join(name_problems("".join(spoofing))) + ")")
        name = "".join(c for c in name if c not in BIDI and c not in ZERO_WIDTH)
    controls = [c for c in name if c in CONTROLS]
    out = "".join("_" if c in FORBIDDEN or c in CONTROLS else c for c in name)
    if controls:
        listed = ", ".join(name_problems("".join(controls)))
        reasons.append(f"control characters replaced with _ ({listed})")
    if any(c in FORBIDDEN for c in name):
        reasons.append("characters SharePoint refuses replaced with _")
    stripped = out.strip(" ").rstrip(".").strip(" ")
    if stripped != out:
        reasons.append("leading/trailing spaces and trailing periods removed")
        out = stripped
    lower = out.lower()
    if lower.startswith("~$"):
        out = "_" + out[2:]
        reasons.append("'~$' prefix (Office owner file) replaced")
    if "_vti_" in out.lower():
        i = out.lower().index("_vti_")
        out = out[:i] + "_vti-" + out[i + 5 :]
        reasons.append("'_vti_' is reserved")
    stem, dot, ext = out.partition(".")
    if stem.lower() in RESERVED:
        out = f"{stem}_{dot}{ext}"
        reasons.append(f"'{stem}' is a reserved device name")
    if out.lower() in (".lock", "desktop.ini"):
        out = "_" + out
        reasons.append(f"'{name}' is a reserved name")
    if library_root and out.lower() == "forms":
        out = "forms_"
        reasons.append("'forms' is reserved at a library's root")
    if not out:
        out = "_"
        reasons.append("empty name")
    return Renamed(out, "; ".join(reasons))


def dedupe(name: str, taken: set[str]) -> str:
    """'Report.docx' -> 'Report (2).docx' when a sibling already has the name (case-insensitive)."""
    if name.lower() not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    n = 2
    while f"{stem} ({n}){dot}{ext}".lower() in taken:
        n += 1
    return f"{stem} ({n}){dot}{ext}"


def conflict_name(name: str, academy: str) -> str:
    """The name for a file whose target path holds different content the tool did not create."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({academy})"
    return f"{stem} ({academy}){dot}{ext}"


def long_path_name(source_id: str, name: str) -> str:
    """Files whose path would pass 400 characters go to 'Long paths/' at the drive root, named uniquely."""
    tag = hashlib.sha256(source_id.encode()).hexdigest()[:8]
    return f"{tag} {name}"[:200]


def path_length(base_path: str, relative: str) -> int:
    """SharePoint counts the decoded path after the host: 'sites/x/Shared Documents/a/b.docx'."""
    return len(f"{base_path.strip('/')}/{relative}")


def size_limit(max_gb: int) -> int:
    return min(HARD_MAX_FILE, max_gb * 1024**3)
