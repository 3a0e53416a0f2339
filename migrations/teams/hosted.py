"""Inline images (a message's hostedContents) carried with the imported message.

Shapes (learn.microsoft.com/graph/api/...): chatmessage-list-hostedcontents and chatmessagehostedcontent-get
(a message's images are read by id, their bytes at `.../hostedContents/{id}/$value`; the message body refers
to each by that URL), and "Import third-party platform messages to Teams" with chatmessage-post ("Post a
message with inline images"): the imported message carries `hostedContents` entries of
`@microsoft.graph.temporaryId`, base64 `contentBytes` and `contentType`, each referred to in the body as
`../hostedContents/{temporaryId}/$value`.

The plan holds the body with its image references already rewritten to temporary ids, and for each image the
source path of its bytes (built from ids trustfold read, never from a URL in the message text, which is the
legacy tenant's users' text). The bytes are read when the message is sent, not kept in the plan.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from migrations.graph.client import GraphError

# An image reference in a Teams message body: the hosted content's id is the path segment before /$value.
# The URL quotes ids in single quotes (teams('...')), so an attribute's own quote is matched by reference.
_SOURCE_REF = re.compile(r"""(["'])((?:(?!\1)[^<>])*?/hostedContents/([A-Za-z0-9+=_-]{1,512})/\$value)\1""")
_TEMP_REF = re.compile(r"""(["'])\.\./hostedContents/(\d+)/\$value\1""")
MAX_IMAGE_BYTES = 4 * 1024 * 1024  # chatmessage-post: a hosted content of at most 4 MB


def hosted_ids(content: str) -> list[str]:
    """The hosted content ids a message body refers to, in order, each once."""
    seen: list[str] = []
    for match in _SOURCE_REF.finditer(content):
        if match.group(3) not in seen:
            seen.append(match.group(3))
    return seen


def plan_images(content: str, message_path: str, ids: list[str]) -> tuple[str, list[dict[str, str]]]:
    """The body with each of `ids`' references rewritten to a temporary id, and for each image the source
    path of its bytes (`message_path`: the message's own path in the legacy tenant)."""
    temp = {hid: str(n) for n, hid in enumerate(ids, start=1)}

    def swap(match: re.Match[str]) -> str:
        hid = match.group(3)
        if hid not in temp:
            return match.group(0)
        return f"{match.group(1)}../hostedContents/{temp[hid]}/$value{match.group(1)}"

    images = [
        {"temp": temp[hid], "path": f"{message_path}/hostedContents/{quote(hid, safe='')}/$value"}
        for hid in ids
    ]
    return _SOURCE_REF.sub(swap, content), images


async def read_images(source: Any, images: list[dict[str, str]]) -> list[dict[str, str] | None]:
    """Each image's hostedContents entry for the import (None where the legacy tenant no longer has it or
    it is larger than an import takes)."""
    out: list[dict[str, str] | None] = []
    for image in images:
        try:
            resp = await source.request("GET", image["path"])
        except GraphError:
            out.append(None)
            continue
        if not resp.ok or not resp.raw or len(resp.raw) > MAX_IMAGE_BYTES:
            out.append(None)
            continue
        out.append(
            {
                "@microsoft.graph.temporaryId": image["temp"],
                "contentBytes": base64.b64encode(resp.raw).decode(),
                "contentType": resp.headers.get("content-type", "image/png").split(";")[0],
            }
        )
    return out


def without_missing(content: str, missing: set[str]) -> str:
    """The body with the references of images that could not be read replaced by a note (an import whose
    body refers to a hosted content it does not carry is refused)."""

    def swap(match: re.Match[str]) -> str:
        if match.group(2) not in missing:
            return match.group(0)
        return f"{match.group(1)}#image-not-carried{match.group(1)}"

    return _TEMP_REF.sub(swap, content)
