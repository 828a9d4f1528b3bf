"""One config object, the single source of truth for a model's recipe (like spaCy's config).

It is saved inside every model directory, so a model always says how it was made; `chuishao
train --config FILE` reads the same structure from YAML or JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chuishao.errors import DataError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextConfig(_Section):
    max_chars: int = Field(2000, ge=50, description="characters of title+text kept for features")
    max_input_chars: int = Field(20_000, ge=100, description="longer inputs are refused with an error")
    title_repeat: int = Field(2, ge=0, description="the title is short and telling: weigh it by repeating")
    min_han_ratio: float = Field(0.2, ge=0, le=1, description="below this share of Chinese characters: error")
    segmenter: str = Field("auto", description="auto | rjieba | jieba (same dictionary and algorithm)")


class FeatureConfig(_Section):
    char_ngrams: tuple[int, int] = (1, 3)
    word_ngrams: tuple[int, int] = (1, 1)  # word pairs lost 1.6 points macro-F1 in 5-fold CV
    min_df: int = 2
    max_df: float = 1.0
    max_features: int | None = 300_000
    word_weight: float = Field(1.0, ge=0, description="scale of the word block against the char block")


class ClassifierConfig(_Section):
    C: float = Field(0.5, gt=0)
    class_weight: str | None = "balanced"
    low_conf_weight: float = Field(0.5, ge=0, le=1, description="sample weight of rows annotated conf=low")
    sub_C: float = Field(0.5, gt=0)
    calibration_folds: int = Field(3, ge=2)
    self_training_weight: float = Field(
        0.3, ge=0, le=1,
        description="weight of unlabelled messages pseudo-labelled by a first model (0: off); needs --corpus",
    )
    class_bias_shrink: float = Field(
        0.5, ge=0, le=1,
        description="per-class score offsets fitted on out-of-fold scores for macro-F1 (+ accuracy), times this (0: off)",
    )
    class_bias_accuracy_weight: float = Field(
        1.0, ge=0, description="weight of accuracy beside macro-F1 when fitting the per-class offsets",
    )
    prune_quantile: float = Field(
        0.5, ge=0, lt=1, description="share of the smallest non-zero weights set to zero (a smaller model file)"
    )


class ReviewConfig(_Section):
    target_precision: float = Field(
        0.95, gt=0, le=1,
        description="needs_review is false only where held-out accuracy at that confidence reaches this",
    )
    top_k: int = Field(3, ge=1)
    evidence_terms: int = Field(6, ge=0)


class ChuishaoConfig(_Section):
    text: TextConfig = Field(default_factory=TextConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    seed: int = 0

    @classmethod
    def load(cls, path: str | Path | None) -> ChuishaoConfig:
        if path is None:
            return cls()
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
            data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
            return cls.model_validate(data or {})
        except ValidationError as exc:  # one line per bad key, without pydantic's links
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
            raise DataError(f"config {path}: {problems}") from None
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise DataError(f"config {path}: {exc}") from exc
