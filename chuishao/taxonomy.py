"""The topic taxonomy as data: areas -> topics -> sub-problems -> departments."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from chuishao.errors import TaxonomyError
from chuishao.resources import default_taxonomy_path
from chuishao.yamlfile import read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Departments(_Strict):
    """A sub-problem's own departments: each one given replaces the topic's (the fallback)."""

    lead: str | None = None
    assist: list[str] | None = None


class SubProblem(_Strict):
    code: str
    name: str
    hint: str = ""
    departments: Departments | None = None

    @model_serializer(mode="wrap")
    def _without_unset_departments(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a sub-problem without departments dumps as before they existed: the fingerprints of
        # saved taxonomies (and so the models' versions) stay the same
        data = handler(self)
        if data.get("departments") is None:
            data.pop("departments", None)
        return data


class Topic(_Strict):
    code: str
    name: str
    name_en: str = ""
    lead: str
    assist: list[str] = Field(default_factory=list)
    subs: list[SubProblem] = Field(default_factory=list)

    @field_validator("lead")
    @classmethod
    def _lead_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a topic needs a lead department")
        return value


class Area(_Strict):
    code: str
    name: str
    name_en: str = ""
    topics: list[Topic]


class OtherClass(_Strict):
    code: str = "OTHER"
    name: str = "其他"
    name_en: str = "other"
    lead: str = ""
    assist: list[str] = Field(default_factory=list)


class Taxonomy(_Strict):
    """A validated label set. ``Taxonomy.free(labels)`` stands for ``--taxonomy none``."""

    name: str
    version: str
    areas: list[Area] = Field(default_factory=list)
    other: OtherClass | None = None
    free_labels: list[str] | None = None

    # ---- construction -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> Taxonomy:
        """Read and check a taxonomy YAML file; every mistake is one TaxonomyError naming the file."""
        path = Path(path) if path is not None else default_taxonomy_path()
        raw = _read_yaml(path)
        if raw is None:
            raise TaxonomyError(f"{path}: the file is empty, expected a mapping with name, version, areas")
        if not isinstance(raw, dict):
            raise TaxonomyError(f"{path}: expected a mapping with name, version, areas")
        if "free_labels" in raw:
            # free_labels stands for --taxonomy none and switches every check off: never from a file.
            raise TaxonomyError(f"{path}: free_labels is internal (--taxonomy none) and not allowed in a taxonomy file")
        try:
            taxonomy = cls.model_validate(raw)
        except ValidationError as exc:
            raise TaxonomyError(f"{path}: {_explain(exc, raw)}") from exc
        taxonomy.check(source=path)
        return taxonomy

    @classmethod
    def free(cls, labels: Iterable[str]) -> Taxonomy:
        """Any label set, no departments or sub-problems (e.g. the Teddy 7 classes)."""
        return cls(name="none", version="0", free_labels=sorted(set(labels)))

    def to_state(self) -> dict[str, object]:
        """The content (departments too) and its fingerprint, as JSON-ready values."""
        return {"content": self.model_dump(mode="json"), "fingerprint": self.fingerprint}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Taxonomy:
        """The taxonomy ``to_state`` gave; a TaxonomyError when its content is invalid or does not
        match its fingerprint (edited by hand)."""
        try:
            taxonomy = cls.model_validate(state["content"])
        except ValidationError as exc:
            raise TaxonomyError(f"saved taxonomy: {_explain(exc, state['content'])}") from exc
        taxonomy.check()
        if taxonomy.fingerprint != state["fingerprint"]:
            raise TaxonomyError(f"saved taxonomy {taxonomy.name}: its content has fingerprint {taxonomy.fingerprint}, "
                                f"not the {state['fingerprint']} saved with it")
        return taxonomy

    def check(self, source: str | Path | None = None) -> None:
        """Raise TaxonomyError on empty or duplicate codes, areas without topics, sub-problem
        codes outside their topic, or topics without departments. ``source``: the file, for the message."""
        if self.free_labels is not None:
            return
        problem = self._first_problem()
        if problem is not None:
            where = f"{source} (taxonomy {self.name})" if source is not None else f"taxonomy {self.name}"
            raise TaxonomyError(f"{where}: {problem}")

    def _first_problem(self) -> str | None:
        for field in ("name", "version"):
            if not getattr(self, field).strip():
                return f"{field} is empty"
        if not self.areas:
            return "no areas defined"
        topic_codes = [t.code for t in self.topics]
        used: dict[str, str] = {}  # code -> the first place it is used, to name both in a duplicate

        def use(code: str, where: str) -> str | None:
            if not code.strip():
                return f"{where}: code is empty"
            if code != code.strip():
                return f"{where}: code {code!r} has spaces around it"
            if code in used:
                return f"duplicate code {code!r}: {used[code]} and {where}"
            used[code] = where
            return None

        for i, area in enumerate(self.areas, 1):
            area_at = f"area {i}"
            problem = use(area.code, area_at) or _named(area.name, area_at)
            if problem:
                return problem
            if not area.topics:
                return f"area {area.code}: no topics (an area needs at least one topic)"
            for j, topic in enumerate(area.topics, 1):
                topic_at = f"topic {j} of area {area.code}"
                problem = use(topic.code, topic_at) or _named(topic.name, topic_at)
                if problem:
                    return problem
                if not topic.lead.strip():
                    return f"topic {topic.code}: no lead department"
                if any(not d.strip() for d in topic.assist):
                    return f"topic {topic.code}: an assist department is empty"
                for k, sub in enumerate(topic.subs, 1):
                    sub_at = f"sub-problem {k} of topic {topic.code}"
                    problem = (use(sub.code, sub_at) or _named(sub.name, sub_at)
                               or _sub_prefix(sub.code, topic.code, topic_codes) or _sub_departments(sub))
                    if problem:
                        return problem
        if self.other is not None:
            return use(self.other.code, "other") or _named(self.other.name, "other")
        return None

    # ---- lookups ------------------------------------------------------------------
    @property
    def is_free(self) -> bool:
        return self.free_labels is not None

    @cached_property
    def topics(self) -> list[Topic]:
        return [t for a in self.areas for t in a.topics]

    @cached_property
    def _topic_by_code(self) -> dict[str, Topic]:
        return {t.code: t for t in self.topics}

    @cached_property
    def _sub_departments(self) -> dict[str, Departments]:
        return {s.code: s.departments for t in self.topics for s in t.subs if s.departments is not None}

    @property
    def subs_with_departments(self) -> frozenset[str]:
        """The sub-problems that name their own departments."""
        return frozenset(self._sub_departments)

    @cached_property
    def _area_of(self) -> dict[str, Area]:
        return {t.code: a for a in self.areas for t in a.topics}

    @cached_property
    def labels(self) -> list[str]:
        """Every label a message may get, in taxonomy order (OTHER last)."""
        if self.free_labels is not None:
            return list(self.free_labels)
        labels = [t.code for t in self.topics]
        if self.other is not None:
            labels.append(self.other.code)
        return labels

    @cached_property
    def sub_codes(self) -> list[str]:
        return [s.code for t in self.topics for s in t.subs]

    def topic(self, code: str) -> Topic | None:
        return self._topic_by_code.get(code)

    def area(self, code: str) -> Area | None:
        return self._area_of.get(code)

    def subs_of(self, code: str) -> list[str]:
        topic = self.topic(code)
        return [s.code for s in topic.subs] if topic else []

    def name_of(self, code: str) -> str:
        topic = self.topic(code)
        if topic is not None:
            return topic.name
        for t in self.topics:
            for s in t.subs:
                if s.code == code:
                    return s.name
        if self.other is not None and code == self.other.code:
            return self.other.name
        return code

    def departments(self, code: str, sub: str | None = None) -> dict[str, object]:
        """Lead and assisting departments of a topic, or of its sub-problem ``sub`` where the
        sub-problem names its own (each of lead and assist falls back to the topic's)."""
        topic = self.topic(code)
        if topic is not None:
            own = self._sub_departments.get(sub) if sub is not None else None
            if own is not None:
                return {"lead": own.lead if own.lead is not None else topic.lead,
                        "assist": list(own.assist if own.assist is not None else topic.assist)}
            return {"lead": topic.lead, "assist": list(topic.assist)}
        if self.other is not None and code == self.other.code and self.other.lead:
            return {"lead": self.other.lead, "assist": list(self.other.assist)}
        return {"lead": None, "assist": []}

    def unknown_labels(self, labels: Iterable[str]) -> list[str]:
        known = set(self.labels)
        return sorted({label for label in labels if label not in known})

    @cached_property
    def fingerprint(self) -> str:
        """Content hash: two models agree on labels and routing only if these match."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint}


UNKNOWN_SUB, OTHER_TOPIC_SUB = "unknown", "under another topic"


class Codes:
    """A taxonomy's topic and sub-problem codes matched by code in any case (``w05a`` is W05a) or by name
    (施工噪声 is W05a). A sub-problem's name is looked up among its topic's own first: a city's taxonomy
    may name a sub-problem 其他 under several topics."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self._topics = {c.casefold(): c for c in taxonomy.labels} | {taxonomy.name_of(c): c for c in taxonomy.labels}
        self._subs_of = {t.code: {s.code.casefold(): s.code for s in t.subs} | {s.name: s.code for s in t.subs}
                         for t in taxonomy.topics}
        subs = [(s.code, s.name) for t in taxonomy.topics for s in t.subs]
        self._subs = {code.casefold(): code for code, _ in subs} | {name: code for code, name in subs}

    def topic(self, given: str) -> str | None:
        return self._topics.get(given) or self._topics.get(given.casefold())

    def sub(self, given: str, topic: str) -> tuple[str | None, str | None]:
        """(its code, None) when ``given`` names a sub-problem of ``topic``; else (None, why): it is
        unknown, or a sub-problem of another topic (it cannot be kept under this one)."""
        own = self._subs_of.get(topic, {})
        code = own.get(given) or own.get(given.casefold())
        if code is not None:
            return code, None
        if (self._subs.get(given) or self._subs.get(given.casefold())) is None:
            return None, UNKNOWN_SUB
        return None, OTHER_TOPIC_SUB


def _read_yaml(path: Path) -> Any:
    return read_yaml(path, TaxonomyError, "taxonomy")


def _sub_departments(sub: SubProblem) -> str | None:
    own = sub.departments
    if own is None:
        return None
    if own.lead is None and own.assist is None:
        return f"sub-problem {sub.code}: departments names neither lead nor assist (leave it out to use the topic's)"
    if own.lead is not None and not own.lead.strip():
        return f"sub-problem {sub.code}: the lead department is empty"
    if own.assist is not None and any(not d.strip() for d in own.assist):
        return f"sub-problem {sub.code}: an assist department is empty"
    return None


def _named(name: str, where: str) -> str | None:
    return f"{where}: name is empty" if not name.strip() else None


def _sub_prefix(sub: str, topic: str, topic_codes: Sequence[str]) -> str | None:
    """Sub-problem codes are their topic's code plus a suffix (W01a, W01b under W01).

    Nothing parses the prefix (subs_of() is membership), but annotators, the correction form and
    data files read W09z as a W09 sub-problem, so one listed elsewhere is a misfiled line.
    The longest topic code wins: under X1 and X10, X10a belongs to X10.
    """
    owner = max((t for t in topic_codes if sub.startswith(t) and len(sub) > len(t)), key=len, default=None)
    if owner == topic:
        return None
    hint = f" (it reads as a sub-problem of {owner}: move it there or rename it)" if owner else ""
    return (f"sub-problem {sub!r} under topic {topic}: sub-problem codes start with their topic's code, "
            f"e.g. {topic}a{hint}")


def _explain(exc: ValidationError, raw: dict[str, Any]) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where, field = _locate(err["loc"], raw)
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if err["type"] == "string_type" and isinstance(value, int | float | bool):
            # version: 1.1 or code: 101 unquoted are numbers to YAML
            msg += f": YAML reads {value!r} as a number, quote it: {field or where}: \"{value}\""
        elif err["type"] == "string_type" and value is None:
            msg += ": it is empty"
        parts.append(f"{where}: {field}: {msg}" if field and where != field else f"{where}: {msg}")
    return "; ".join(parts)


def _locate(loc: Sequence[int | str], raw: Any) -> tuple[str, str]:
    """('areas', 1, 'topics', 0, 'assist') -> ('topic W08', 'assist'), with the file's own codes."""
    def code_of(item: Any) -> str | None:
        code = item.get("code") if isinstance(item, dict) else None
        return code if isinstance(code, str) and code.strip() and code == code.strip() else None

    where, node, rest = "", raw, list(loc)
    while len(rest) >= 2 and rest[0] in ("areas", "topics", "subs") and isinstance(rest[1], int):
        key, index = rest[0], rest[1]
        items = node.get(key) if isinstance(node, dict) else None
        node = items[index] if isinstance(items, list) and index < len(items) else None
        kind = {"areas": "area", "topics": "topic", "subs": "sub-problem"}[key]
        code = code_of(node)
        where = f"{kind} {code}" if code else f"{kind} {index + 1}" + (f" of {where}" if where else "")
        rest = rest[2:]
    if rest and rest[0] == "other":
        where, rest = "other", rest[1:]
    field = ".".join(str(p) for p in rest)
    return (where or field, field)
