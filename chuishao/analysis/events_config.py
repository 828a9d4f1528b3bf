"""The settings of event grouping and whistle flags: one small config, YAML-able, every key overridable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chuishao.errors import DataError


class EventsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shingle: int = Field(2, ge=1, le=3, description="characters per shingle (n-gram of the normalised text)")
    num_perm: int = Field(96, ge=8, le=512, description="MinHash permutations (signature length)")
    bands: int = Field(32, ge=1, description="LSH bands; num_perm / bands rows each")
    seed: int = Field(1, ge=0, description="seed of the permutations (the same seed gives the same groups)")
    threshold: float = Field(0.45, gt=0, le=1, description="estimated Jaccard similarity at which two reports are one problem")
    window_days: float | None = Field(
        7.0, gt=0, description="two timed reports join only within this many days (none: no window); "
                               "reports without time join each other by text, topic and place alone, never a timed one")
    max_neighbours: int = Field(
        10, ge=1, description="in a band bucket sorted by time, each report is compared with this many next ones "
                              "(bounds the work on big buckets; union-find still joins the chain)")
    whistle_size: int = Field(10, ge=2, description="an event with this many reports is a whistle candidate")
    whistle_departments: int = Field(
        2, ge=2, description="an event whose reports name this many distinct lead departments is a whistle candidate")
    whistle_count_assist: bool = Field(False, description="count assisting departments as well as leads")

    @model_validator(mode="after")
    def _bands_divide(self) -> EventsConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands

    @property
    def window_seconds(self) -> float | None:
        return None if self.window_days is None else self.window_days * 86400.0

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> EventsConfig:
        """The config in a YAML file (None: the defaults), then the given keys (None values are left
        out: a CLI option not given). Any problem is one DataError naming the key."""
        raw: dict[str, Any] = {}
        origin = "events config" if path is None else f"events config {path}"
        if path is not None:
            try:
                loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise DataError(f"{origin}: {exc}") from None
            if not isinstance(loaded, dict):
                raise DataError(f"{origin}: expected a mapping of keys (threshold: 0.5, ...)")
            raw.update(loaded)
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
            raise DataError(f"{origin}: {problems}") from None
