"""Reading config YAML safely: bounded size, strict UTF-8, no aliases, duplicate keys refused, lines kept.

Config is reviewed data, so anything YAML allows but a reviewer could misread (anchors, duplicate keys,
tags) is refused rather than interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from trust.errors import ConfigError

MAX_FILE_BYTES = 256 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 32

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    file: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, loc: Path_) -> int | None:
        """The line of the deepest known key on the path (pydantic locs may go deeper than the YAML)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                self.name,
                "YAML aliases (*name) are not allowed in trustfold config; write the value out",
                line=event.start_mark.line + 1,
            )
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> YamlDocument:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(path, f"cannot read file: {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise ConfigError(path, f"file is {size} bytes; config files may be at most {MAX_FILE_BYTES} bytes")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(path, "file is not valid UTF-8 text", line=line) from None
    if not text.strip():
        raise ConfigError(path, "file is empty; expected a YAML mapping")
    loader = _NoAliasLoader(text)
    loader.name = str(path)
    try:
        node = loader.get_single_node()
    except ConfigError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            path, f"YAML does not parse: {problem}", line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"YAML does not parse: {exc}") from None
    except RecursionError:
        # PyYAML composes nested nodes recursively: a document nested thousands deep exhausts the stack
        # before _to_python's depth bound can see it. Find where it gets too deep with the flat event stream.
        raise ConfigError(
            path, f"YAML nested deeper than {MAX_DEPTH} levels", line=_too_deep_line(text)
        ) from None
    finally:
        loader.dispose()
    if node is None:
        raise ConfigError(path, "file holds no YAML document; expected a mapping")
    doc = YamlDocument(file=path, data=None)
    counter = [0]
    doc.data = _to_python(node, loader, doc, (), counter, 0)
    return doc


def _too_deep_line(text: str) -> int | None:
    """The line where nesting first passes MAX_DEPTH, from PyYAML's parser events (no recursion)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return int(event.start_mark.line) + 1 if event.start_mark is not None else 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _to_python(
    node: Node, loader: yaml.SafeLoader, doc: YamlDocument, loc: Path_, counter: list[int], depth: int
) -> Any:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise ConfigError(doc.file, f"file has more than {MAX_NODES} YAML nodes; config is never that large")
    if depth > MAX_DEPTH:
        raise ConfigError(
            doc.file, f"YAML nested deeper than {MAX_DEPTH} levels", line=node.start_mark.line + 1
        )
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConfigError(
                    doc.file, "mapping keys must be plain strings", line=key_node.start_mark.line + 1
                )
            key = str(key_node.value)
            if key == "<<":
                raise ConfigError(
                    doc.file, "YAML merge keys (<<) are not allowed", line=key_node.start_mark.line + 1
                )
            if key in out:
                raise ConfigError(
                    doc.file,
                    "duplicate key; each key may appear once",
                    line=key_node.start_mark.line + 1,
                    field=".".join(str(p) for p in (*loc, key)),
                )
            child = (*loc, key)
            doc.lines[child] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, loader, doc, child, counter, depth + 1)
        return out
    if isinstance(node, SequenceNode):
        return [_to_python(v, loader, doc, (*loc, i), counter, depth + 1) for i, v in enumerate(node.value)]
    if isinstance(node, ScalarNode):
        if node.tag and not node.tag.startswith("tag:yaml.org,2002:"):
            raise ConfigError(doc.file, f"YAML tag {node.tag} is not allowed", line=node.start_mark.line + 1)
        try:
            return loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise ConfigError(doc.file, f"bad value: {exc}", line=node.start_mark.line + 1) from None
    raise ConfigError(doc.file, "unsupported YAML node", line=node.start_mark.line + 1)
