"""Inline images (hostedContents) arrive with their imported message: the bytes the legacy message showed are
the bytes the trust's message serves, referenced from its body (chatmessage-list-hostedcontents,
chatmessagehostedcontent-get; "Import third-party platform messages to Teams" and chatmessage-post's inline
images: `hostedContents` with temporary ids, referenced as ../hostedContents/{id}/$value)."""

from __future__ import annotations

import base64
import re
from typing import Any

from tests.teams.conftest import World

_REF = re.compile(
    r"teams\('([^']+)'\)/channels\('([^']+)'\)/messages\('([^']+)'\)(?:/replies\('([^']+)'\))?"
    r"/hostedContents/([^/\"']+)/\$value"
)


def _png(tag: bytes) -> bytes:
    # Not a real picture: distinct bytes per image are what the test follows end to end.
    return b"\x89PNG\r\n\x1a\n" + tag * 64


def _image(temp: str, data: bytes) -> dict[str, str]:
    return {
        "@microsoft.graph.temporaryId": temp,
        "contentBytes": base64.b64encode(data).decode(),
        "contentType": "image/png",
    }


def _served(w: World, content: str) -> list[bytes]:
    """The bytes behind each image reference of a trust message's body, in order."""
    out = []
    for team, channel, mid, rid, hid in _REF.findall(content):
        path = f"/teams/{team}/channels/{channel}/messages/{mid}"
        path += f"/replies/{rid}" if rid else ""
        with w.graph() as g:
            r = g.get(f"{path}/hostedContents/{hid}/$value")
            assert r.status_code == 200, r.text
            out.append(r.content)
    return out


def _author(w: World, team_id: str, channel_id: str) -> str:
    msgs = w.messages(team_id, channel_id, w.source)["value"]
    people = w.people()
    return next(m["from"]["user"]["id"] for m in msgs if m["from"]["user"]["id"] in people)


def test_inline_images_arrive_with_their_message_and_reply(migrated: World) -> None:
    w = migrated
    source = w.teams(w.source)
    name, team = next(
        (n, t)
        for n, t in sorted(source.items())
        if w.messages(t["id"], w.channels(t["id"], w.source)["General"]["id"], w.source)["value"]
    )
    general = w.channels(team["id"], w.source)["General"]
    author = _author(w, team["id"], general["id"])
    one, two, three = _png(b"1"), _png(b"2"), _png(b"3")
    root = w.post_at_source(
        team["id"],
        general["id"],
        {
            "from": author,
            "content": '<p>board <img src="../hostedContents/1/$value" alt="a"></p>'
            '<p><img src="../hostedContents/2/$value" alt="b"></p>',
            "hostedContents": [_image("1", one), _image("2", two)],
        },
    )
    reply = w.post_at_source(
        team["id"],
        general["id"],
        {
            "from": author,
            "content": '<p>answer <img src="../hostedContents/7/$value"></p>',
            "hostedContents": [_image("7", three)],
            "replyToId": root["id"],
        },
    )
    out = w.run()
    assert out["status"] == "succeeded", out
    target = next(t for n, t in w.teams().items() if n == name or n.endswith(f" {name}"))
    dst_general = w.channels(target["id"])["General"]
    after = {m["createdDateTime"]: m for m in w.messages(target["id"], dst_general["id"])["value"]}
    carried = after[root["createdDateTime"]]
    assert _served(w, carried["body"]["content"]) == [one, two]
    assert "board" in carried["body"]["content"]
    assert _served(w, after[reply["createdDateTime"]]["body"]["content"]) == [three]
    # The generator's own picture (a class's first message) came too: every source image is in the trust.
    images: dict[str, Any] = {"source": 0, "trust": 0}
    for n, t in source.items():
        dst = next(x for m, x in w.teams().items() if m == n or m.endswith(f" {n}"))
        dst_channels = w.channels(dst["id"])
        for cname, c in w.channels(t["id"], w.source).items():
            for m in w.messages(t["id"], c["id"], w.source)["value"]:
                images["source"] += m["body"]["content"].count("/hostedContents/")
            for m in w.messages(dst["id"], dst_channels[cname]["id"])["value"]:
                images["trust"] += len(_served(w, m["body"]["content"]))
    assert images["source"] == images["trust"] > 3, images
