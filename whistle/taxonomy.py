"""The topic taxonomy as data: areas -> topics -> sub-problems -> departments."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from whistle.errors import TaxonomyError
from whistle.resources import default_taxonomy_path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubProblem(_Strict):
    code: str
    name: str
    hint: str = ""


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
        path = Path(path) if path is not None else default_taxonomy_path()
        if not path.is_file():
            raise TaxonomyError(f"taxonomy file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TaxonomyError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise TaxonomyError(f"{path}: expected a mapping with name, version, areas")
        try:
            taxonomy = cls.model_validate(raw)
        except ValidationError as exc:
            raise TaxonomyError(f"{path}: {_explain(exc)}") from exc
        taxonomy.check()
        return taxonomy

    @classmethod
    def free(cls, labels: Iterable[str]) -> Taxonomy:
        """Any label set, no departments or sub-problems (e.g. the Teddy 7 classes)."""
        return cls(name="none", version="0", free_labels=sorted(set(labels)))

    def check(self) -> None:
        """Raise TaxonomyError on duplicate codes or topics without departments."""
        if self.free_labels is not None:
            return
        if not self.areas:
            raise TaxonomyError(f"taxonomy {self.name}: no areas defined")
        seen: dict[str, str] = {}
        codes = [a.code for a in self.areas]
        for topic in self.topics:
            codes.append(topic.code)
            codes.extend(s.code for s in topic.subs)
            if not topic.lead.strip():
                raise TaxonomyError(f"taxonomy {self.name}: topic {topic.code} has no lead department")
        if self.other is not None:
            codes.append(self.other.code)
        for code in codes:
            if code in seen:
                raise TaxonomyError(f"taxonomy {self.name}: duplicate code {code!r}")
            seen[code] = code

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

    def departments(self, code: str) -> dict[str, object]:
        topic = self.topic(code)
        if topic is not None:
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


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
