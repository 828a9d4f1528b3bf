"""Reading a data file a city edits (taxonomy, gazetteer, urgency rules): strict YAML with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chuishao.errors import ChuishaoError


class _UniqueKeys(yaml.constructor.SafeConstructor):
    """A SafeLoader mix-in that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Checked before the base class merges `<<: *anchor` keys into node.value: a merged key that
        # the mapping then overrides is YAML's intended use, not a duplicate. Once per node: a
        # merged-in node is flattened in place and may be constructed again through an alias.
        checked: set[int] = self.__dict__.setdefault("_checked_nodes", set())
        if id(node) not in checked:
            checked.add(id(node))
            first: dict[object, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given at line {first[key].line + 1})",
                        key_node.start_mark)
                first[key] = key_node.start_mark
        super().flatten_mapping(node)


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """The pure-Python SafeLoader: its error messages say where and what (used to explain a failure)."""


# libyaml's parser reads the bundled gazetteer about ten times faster (service and CLI start-up);
# PyYAML without libyaml falls back to the pure-Python one
_FastLoader: type = _UniqueKeyLoader
if getattr(yaml, "CSafeLoader", None) is not None:
    class _CUniqueKeyLoader(_UniqueKeys, yaml.CSafeLoader):
        """The same checks on libyaml's parser."""

    _FastLoader = _CUniqueKeyLoader


def read_yaml(path: Path, error: type[ChuishaoError], what: str) -> Any:
    """The YAML data of ``path``; ``error`` (naming the file and the place) when it is missing or a directory,
    cannot be read, is not UTF-8, is not valid YAML or gives a key twice. ``what``: the kind of file, for the
    messages."""
    if path.is_dir():
        article = "an" if what[:1] in "aeiou" else "a"
        raise error(f"{path} is a directory, not {article} {what} file: give the path of the YAML file")
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")  # a BOM (Windows Notepad) is fine
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}): "
                            f"save the {what} file as UTF-8") from exc
    try:
        return yaml.load(text, Loader=_FastLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError:
        pass
    try:  # the pure-Python parser again, for its messages (libyaml words and places errors differently)
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML{_yaml_problem(exc, text)}") from exc


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """One line: where and what. PyYAML's own text spans lines and cites "<unicode string>"."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "syntax error"
        context = exc.context_mark
        if exc.problem and exc.context and context is not None and context.line != mark.line:
            problem += f" ({exc.context} at line {context.line + 1})"
        return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    if isinstance(exc, yaml.reader.ReaderError):  # a control character; position counts characters
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return f" at line {line}, column {column}: character #x{exc.character:04x} is not allowed"
    return ": " + " ".join(str(exc).replace('in "<unicode string>", ', "").split())
