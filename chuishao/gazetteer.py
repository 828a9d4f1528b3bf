"""A city's places as data: city -> districts/counties -> streets/townships -> communities/villages.

Each place has a name, aliases (other ways residents write it) and the office responsible (the
街道办事处 of a street, the 居民委员会 of a community). A city writes its own YAML file
(docs/places.md); ``Gazetteer.load`` checks it and names the file and the entry at fault.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chuishao.errors import GazetteerError
from chuishao.resources import default_gazetteer_path
from chuishao.yamlfile import read_yaml

LEVELS = ("city", "district", "street", "community")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Community(_Strict):
    name: str
    aliases: list[str] = Field(default_factory=list)
    office: str | None = None


class Street(_Strict):
    name: str
    aliases: list[str] = Field(default_factory=list)
    office: str | None = None
    communities: list[Community] = Field(default_factory=list)


class District(_Strict):
    name: str
    aliases: list[str] = Field(default_factory=list)
    office: str | None = None
    streets: list[Street] = Field(default_factory=list)


class City(_Strict):
    name: str
    aliases: list[str] = Field(default_factory=list)
    office: str | None = None
    province: str | None = None
    province_aliases: list[str] = Field(default_factory=list)
    districts: list[District]


@dataclass(frozen=True)
class Entry:
    """One place of the gazetteer, flattened: its level, names and the chain above it."""

    index: int
    level: str  # one of LEVELS
    name: str
    aliases: tuple[str, ...]
    office: str | None
    parent: int | None  # index of the place above it (None for a city)
    province: str | None
    city: str
    district: str | None = None
    street: str | None = None
    community: str | None = None

    @property
    def depth(self) -> int:
        return LEVELS.index(self.level)

    @property
    def where(self) -> str:
        """The entry as a path for messages, e.g. "A市 > A3区 > 天顶街道"."""
        return " > ".join(p for p in (self.city, self.district, self.street, self.community) if p)


class Gazetteer(_Strict):
    """A validated gazetteer. ``Gazetteer.load(path)`` reads and checks a file."""

    name: str
    version: str
    cities: list[City]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Gazetteer:
        """Read and check a gazetteer YAML file; every mistake is one GazetteerError naming the file and the entry."""
        path = Path(path) if path is not None else default_gazetteer_path()
        raw = read_yaml(path, GazetteerError, "gazetteer")
        if not isinstance(raw, dict):
            raise GazetteerError(f"{path}: expected a mapping with name, version, cities"
                                 + (" (the file is empty)" if raw is None else ""))
        try:
            gazetteer = cls.model_validate(raw)
        except ValidationError as exc:
            raise GazetteerError(f"{path}: {_explain(exc, raw)}") from exc
        problem = gazetteer.first_problem()
        if problem is not None:
            raise GazetteerError(f"{path} (gazetteer {gazetteer.name}): {problem}")
        return gazetteer

    # ---- checks ---------------------------------------------------------------------------------
    def first_problem(self) -> str | None:
        """Empty names, names given twice under one parent, an alias claimed by two places, a city without districts."""
        for field in ("name", "version"):
            if not getattr(self, field).strip():
                return f"{field} is empty"
        if not self.cities:
            return "no cities: give at least one city with its districts"
        problem = _siblings([c.name for c in self.cities], "city", "the gazetteer")
        if problem:
            return problem
        for city in self.cities:
            if not city.districts:
                return f"city {city.name}: no districts"
            if city.province is not None and not city.province.strip():
                return f"city {city.name}: province is empty (leave it out if the city has none)"
        for entry in self.entries:
            where = f"{entry.level} {entry.where}"
            for surface in (entry.name, *entry.aliases):
                if not surface.strip():
                    return f"{where}: a name or alias is empty"
                if surface != surface.strip():
                    return f"{where}: {surface!r} has spaces around it"
            if entry.office is not None and not entry.office.strip():
                return f"{where}: office is empty (leave it out if none is known)"
        for parent, kids, level in self._families():
            problem = _siblings(kids, level, parent)
            if problem:
                return problem
        # An alias stands for one place: one that two places claim (as alias or name) routes to a guess.
        # Two places may share a name (two 城关镇 in two counties): the district mentioned decides.
        owners: dict[str, Entry] = {}
        names: dict[str, Entry] = {}
        for entry in self.entries:
            names.setdefault(entry.name, entry)
        for entry in self.entries:
            for alias in entry.aliases:
                if alias == entry.name:
                    continue
                other = owners.get(alias) or names.get(alias)
                if other is not None and other.index != entry.index:
                    return (f"alias {alias!r} is claimed by two places: {entry.level} {entry.where} and "
                            f"{other.level} {other.where}")
                owners[alias] = entry
        return None

    def _families(self) -> Iterator[tuple[str, list[str], str]]:
        for city in self.cities:
            yield f"city {city.name}", [d.name for d in city.districts], "district"
            for district in city.districts:
                yield f"district {city.name} > {district.name}", [s.name for s in district.streets], "street"
                for street in district.streets:
                    yield (f"street {city.name} > {district.name} > {street.name}",
                           [c.name for c in street.communities], "community")

    # ---- lookups --------------------------------------------------------------------------------
    @cached_property
    def entries(self) -> list[Entry]:
        """Every place, parents before their children."""
        out: list[Entry] = []

        def add(level: str, place: Any, parent: int | None, chain: dict[str, Any]) -> int:
            out.append(Entry(len(out), level, place.name, tuple(place.aliases), place.office, parent, **chain))
            return len(out) - 1

        for city in self.cities:
            base: dict[str, Any] = {"province": city.province, "city": city.name}
            ci = add("city", city, None, base)
            for district in city.districts:
                dchain = {**base, "district": district.name}
                di = add("district", district, ci, dchain)
                for street in district.streets:
                    schain = {**dchain, "street": street.name}
                    si = add("street", street, di, schain)
                    for community in street.communities:
                        add("community", community, si, {**schain, "community": community.name})
        return out

    @cached_property
    def provinces(self) -> dict[str, str]:
        """Surface form -> province name, for the provinces the gazetteer's cities are in."""
        out: dict[str, str] = {}
        for city in self.cities:
            if city.province:
                for surface in (city.province, *city.province_aliases):
                    out[surface] = city.province
        return out

    def ancestors(self, index: int) -> list[int]:
        """The entry and the places above it, nearest first."""
        chain = []
        at: int | None = index
        while at is not None:
            chain.append(at)
            at = self.entries[at].parent
        return chain

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        counts = {level: sum(e.level == level for e in self.entries) for level in LEVELS}
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint, **counts}


def _siblings(names: Sequence[str], level: str, parent: str) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return f"{parent}: {level} {name!r} is given twice"
        seen.add(name)
    return None


def _explain(exc: ValidationError, raw: dict[str, Any]) -> str:
    parts = []
    for err in exc.errors()[:5]:
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if err["type"] == "string_type" and isinstance(value, int | float | bool):
            msg += f": YAML reads {value!r} as a number, quote it"
        elif err["type"] == "string_type" and value is None:
            msg += ": it is empty"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (expected name, aliases, office and the level below: districts, streets, communities)"
        parts.append(f"{_locate(err['loc'], raw)}: {msg}")
    return "; ".join(parts)


_KIND = {"cities": "city", "districts": "district", "streets": "street", "communities": "community"}


def _locate(loc: Sequence[int | str], raw: Any) -> str:
    """('cities', 0, 'districts', 2, 'name') -> 'district A3区: name', with the file's own names."""
    where, node, rest = "", raw, list(loc)
    while len(rest) >= 2 and rest[0] in _KIND and isinstance(rest[1], int):
        items = node.get(rest[0]) if isinstance(node, dict) else None
        node = items[rest[1]] if isinstance(items, list) and rest[1] < len(items) else None
        name = node.get("name") if isinstance(node, dict) else None
        label = name if isinstance(name, str) and name.strip() else f"#{rest[1] + 1}"
        where = f"{where} > {label}" if where else label
        kind = _KIND[str(rest[0])]
        rest = rest[2:]
    field = ".".join(str(p) for p in rest)
    if not where:
        return field or "the file"
    return f"{kind} {where}" + (f": {field}" if field else "")
