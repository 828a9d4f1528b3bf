"""One config object, the single source of truth for a model's recipe (like spaCy's config).

It is saved inside every model directory, so a model always says how it was made, data included;
`chuishao train --config FILE` reads the same structure from YAML or JSON, and `--KEY VALUE`
overrides any key (``--classifier.C 1.0``, ``--features.char_ngrams 1,4``, ``--paths.shared DIR``).
Strings of the data section may name a path variable, ``${paths.shared}/whistle/train.jsonl``;
relative paths resolve against the current directory.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from chuishao.errors import DataError

MAX_NGRAM = 10  # longest n-gram a range may ask for


def _ngram_range(value: tuple[int, int]) -> tuple[int, int]:
    lo, hi = value
    if not 1 <= lo <= hi <= MAX_NGRAM:
        raise ValueError(f"needs 1 <= lo <= hi <= {MAX_NGRAM}, got {lo},{hi}")
    return value


NgramRange = Annotated[tuple[int, int], AfterValidator(_ngram_range)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    train: list[str] = Field([], description="labelled JSONL/CSV files (text, optional title, label); they also calibrate")
    corpus: str | None = Field(None, description="unlabelled messages (JSONL): self-training, and the texts of extra_labels")
    extra_labels: list[str] = Field([], description="id,label,sub CSV files joined with the corpus by id")
    extra_data: list[str] = Field([], description="labelled files that train but do not calibrate (e.g. authored examples)")
    sheets: list[str] = Field(
        [], description="labelling sheets (CSV/XLSX) from chuishao suggest-labels, filled by annotators: "
                        "rows with an empty label are skipped and counted; they train but do not calibrate")
    relabel: list[str] = Field(
        [], description="id,label,sub CSV files whose labels replace those of the train/extra_data rows with these ids")
    exclude: list[str] = Field([], description="held-out files (test sets) whose ids are never trained on")
    leakage: Literal["refuse", "drop", "allow"] = Field(
        "refuse", description="training rows that copy a held-out row (same id, same or near-same text): "
                              "refuse to train | drop them | allow (--allow-leakage)")
    label_field: str = Field("label", description="field/column holding the label")
    taxonomy: str = Field("default", description="default (the bundled whistle-15) | none (any labels) | a taxonomy YAML file")
    id_field: str = Field("id", description="field/column holding the message id")
    text_field: str = Field("text", description="field/column holding the message text")
    title_field: str = Field("title", description="field/column holding the title ('' for none)")


class TextConfig(_Section):
    max_chars: int = Field(2000, ge=50, description="characters of title+text kept for features")
    max_input_chars: int = Field(20_000, ge=100, description="longer inputs are refused with an error")
    title_repeat: int = Field(2, ge=0, description="the title is short and telling: weigh it by repeating")
    min_han_ratio: float = Field(0.2, ge=0, le=1, description="below this share of Chinese characters: error")
    segmenter: Literal["auto", "rjieba", "jieba"] = Field(
        "auto", description="word segmenter: auto | rjieba | jieba (same dictionary and algorithm)")


class FeatureConfig(_Section):
    char_ngrams: NgramRange = Field((1, 3), description="lengths of the character n-grams, lo,hi")
    word_ngrams: NgramRange = Field(
        (1, 1), description="lengths of the word n-grams, lo,hi (word pairs lost 1.6 points macro-F1 in 5-fold CV)")
    min_df: int = Field(2, ge=1, description="an n-gram is kept if at least this many training messages have it")
    max_df: float = Field(1.0, gt=0, le=1, description="an n-gram is kept if at most this share of messages have it")
    max_features: Annotated[int, Field(ge=1)] | None = Field(
        300_000, description="the most frequent n-grams kept (null: all)")
    word_weight: float = Field(1.0, ge=0, description="scale of the word block against the char block")


class ClassifierConfig(_Section):
    C: float = Field(0.5, gt=0, description="regularisation of the topic SVM (larger: fits the training data closer)")
    class_weight: Literal["balanced"] | None = Field(
        "balanced", description="balanced (rare topics weigh more) | null (every row weighs the same)")
    low_conf_weight: float = Field(0.5, ge=0, le=1, description="sample weight of rows annotated conf=low")
    sub_C: float = Field(0.5, gt=0, description="regularisation of the sub-problem SVMs")
    calibration_folds: int = Field(3, ge=2, description="folds of the out-of-fold scores that calibrate confidence")
    self_training_weight: float = Field(
        0.3, ge=0, le=1,
        description="weight of unlabelled messages pseudo-labelled by a first model (0: off); needs data.corpus",
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
    top_k: int = Field(3, ge=1, description="topics listed in an answer")
    evidence_terms: int = Field(6, ge=0, description="terms of the message shown as evidence for its topic")


def _bool_or_auto(value: object) -> object:
    """true/false (as pydantic reads booleans) or 'auto'; anything else one clear error instead of two union branches'."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "auto":
            return "auto"
        if word in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return word in ("true", "yes", "on", "1")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("should be true, false or auto")


class TransformerConfig(_Section):
    """The encoder half of ``model_type: cascade`` (chuishao.recipes.cascade); a classical model ignores it."""

    base: str | None = Field(
        None, description="encoder folder: chuishao transformer import-encoder's output, or a local HF BERT-style encoder",
    )
    max_length: int = Field(128, ge=8, le=512, description="pieces of query: title。text kept per message")
    epochs: float = Field(3.0, gt=0, description="passes over the training rows (the best dev checkpoint is kept)")
    batch_size: int = Field(16, ge=1, description="messages per optimiser step")
    lr: float = Field(8e-5, gt=0, description="AdamW learning rate of the encoder")
    head_lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the linear head")
    dev_fraction: float = Field(
        0.15, gt=0, lt=1, description="stratified share of data.train kept as dev: early stopping and the cascade weights",
    )
    extra_rows: bool = Field(
        False, description="also fine-tune on transformer.extra_labels and data.extra_data (minus the dev ids)",
    )
    extra_labels: list[str] | None = Field(
        None, description="id,label,sub files of the encoder's extra rows (null: data.extra_labels)",
    )
    max_other: Annotated[int, Field(ge=0)] | None = Field(
        1500, description="OTHER rows of data.extra_labels the encoder trains on, a seeded sample (null: all)",
    )
    encoders: int = Field(
        1, ge=1, le=8, description="encoders fine-tuned (seeds seed, seed+1, ...; one dev split) whose mean re-scores",
    )
    evals_per_epoch: int = Field(2, ge=1, description="dev evaluations per epoch")
    patience: int = Field(3, ge=1, description="dev evaluations without a better macro-F1 before stopping")
    threads: int = Field(2, ge=1, description="torch threads while pretraining and fine-tuning")
    bf16: Annotated[bool | Literal["auto"], BeforeValidator(_bool_or_auto)] = Field(
        False, description="bfloat16 autocast while pretraining and fine-tuning (fp32 weights kept): about 2x faster on "
                           "CPUs with AVX512-BF16 or AMX, slower elsewhere; auto: on where the CPU has them",
    )
    pretrain_steps: int = Field(
        0, ge=0, description="masked-LM steps on data.corpus and the training file before fine-tuning (0: off); "
                             "data.exclude, the dev split and their near-copies never train it",
    )
    pretrain_lr: float = Field(5e-5, gt=0, description="AdamW learning rate of the masked-LM pretraining")
    pretrain_batch_size: int = Field(32, ge=1, description="windows of max_length pieces per pretraining step")
    int8: bool = Field(True, description="ship the dynamic int8 ONNX encoder (fp32 otherwise)")
    max_share: float = Field(1.0, gt=0, le=1, description="only gates re-scoring at most this share of dev messages")
    students: int = Field(
        0, ge=0, le=4, description="self-training: encoders fine-tuned after the others on their training rows plus "
                                   "the corpus messages those do not hold (nor held-out ones or their copies) that the "
                                   "first encoders and the dev-only classical model label with at least "
                                   "student_confidence (OTHER among them capped at max_other); seeds seed, seed+1, ...; "
                                   "they join the mean (0: off; not with refit)",
    )
    student_confidence: float = Field(
        0.8, gt=0, le=1, description="the teacher's probability a corpus message needs to train the students",
    )
    refit: bool = Field(
        False, description="after the cascade is fitted on dev, fine-tune each encoder again on the whole training file "
                           "(dev included) for as many steps as its dev-split twin's best checkpoint took, and ship "
                           "those with the dev-fitted weight, gate and temperatures: about twice the fine-tuning time",
    )


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DATA_PATHS = ("train", "corpus", "extra_labels", "extra_data", "sheets", "exclude", "taxonomy")


def _default_paths() -> dict[str, str | None]:
    return {"shared": "../shared/data"}


class ChuishaoConfig(_Section):
    paths: dict[str, str | None] = Field(
        default_factory=_default_paths,
        description="path variables, ${paths.NAME} in the data section; a saved model keeps their names only",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    seed: int = Field(0, description="random seed of the SVMs, the folds, the dev split and the fine-tuning")
    model_type: Literal["classical", "cascade"] = Field(
        "classical", description="classical (TF-IDF + linear) | cascade (classical + a fine-tuned encoder for the unsure)",
    )
    transformer: TransformerConfig = Field(default_factory=TransformerConfig)

    @classmethod
    def load(cls, path: str | Path | None = None,
             overrides: Mapping[str, str | list[str] | None] | None = None) -> ChuishaoConfig:
        """The config in ``path`` (None: the code's defaults) with ``overrides`` (dotted key: raw
        text from the command line) applied; any problem is one DataError line naming the key."""
        origin = "config" if path is None else f"config {path}"
        raw: Any = {}
        if path is not None:
            path = Path(path)
            try:
                text = path.read_text(encoding="utf-8")
                raw = (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)) or {}
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise DataError(f"{origin}: {exc}") from exc
            if not isinstance(raw, dict):
                raise DataError(f"{origin}: not a mapping of sections (text:, features:, ...)")
        given = {key.replace("-", "_"): value for key, value in (overrides or {}).items()}
        for key, value in given.items():
            raw = set_key(raw, key, value)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:  # one line per bad key, without pydantic's links
            raise DataError(f"{origin}: {_problems(exc, given)}") from None

    def resolved_data(self) -> DataConfig:
        """The data section with each ``${paths.NAME}`` replaced by its value."""
        data = self.data.model_dump()
        for key in _DATA_PATHS:
            value = data[key]
            if isinstance(value, list):
                data[key] = [self._interpolate(v, f"data.{key}[{i}]") for i, v in enumerate(value)]
            elif value is not None:
                data[key] = self._interpolate(value, f"data.{key}")
        return DataConfig.model_validate(data)

    def resolved_encoder_labels(self) -> list[str]:
        """The id,label files of the encoder's extra rows: transformer.extra_labels, else data.extra_labels."""
        files = self.transformer.extra_labels
        if files is None:
            return self.resolved_data().extra_labels
        return [self._interpolate(v, f"transformer.extra_labels[{i}]") for i, v in enumerate(files)]

    def resolved_base(self) -> str | None:
        """transformer.base with its ``${paths.NAME}`` replaced."""
        base = self.transformer.base
        return None if base is None else self._interpolate(base, "transformer.base")

    def portable(self) -> ChuishaoConfig:
        """The recipe as a model keeps it: the path variables keep their names, not this machine's
        values (like spaCy's saved [paths]), and the data section keeps its ``${paths.NAME}``."""
        return self.model_copy(update={"paths": dict.fromkeys(self.paths)}, deep=True)

    def _interpolate(self, value: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            section, _, var = name.partition(".")
            if section != "paths" or var not in self.paths:
                known = ", ".join(f"${{paths.{k}}}" for k in self.paths) or "none"
                raise DataError(f"config: {where}: unknown variable ${{{name}}} (defined: {known})")
            if self.paths[var] is None:
                raise DataError(f"config: {where}: ${{{name}}} is not set; give --{name} DIR")
            return str(self.paths[var])

        return _VARIABLE.sub(replace, value)


# ---- dotted keys: listing, overriding, reporting ------------------------------------------------

def _is_section(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def config_keys(paths: Mapping[str, object] | None = None) -> Iterator[tuple[str, FieldInfo | None]]:
    """Every settable dotted key with its field (None for a path variable), in config order."""
    for name, field in ChuishaoConfig.model_fields.items():
        if name == "paths":
            for var in (_default_paths() if paths is None else paths):
                yield f"paths.{var}", None
        elif _is_section(field.annotation):
            for sub, subfield in field.annotation.model_fields.items():
                yield f"{name}.{sub}", subfield
        else:
            yield name, field


def _unknown_key(key: str, known: list[str]) -> DataError:
    near = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    near += [k for k in known if k.lower() == key.lower() and k not in near]
    if near:
        hint = f"did you mean {' or '.join(near)}?"
    else:
        section = key.partition(".")[0]
        same = [k for k in known if k.partition(".")[0] == section]
        hint = f"{section} has {', '.join(same)}" if same else "see chuishao train --help"
    return DataError(f"unknown config key {key} ({hint})")


def value_kind(annotation: Any) -> tuple[bool, bool]:
    """(whether the key takes a list or range, whether it takes null)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return value_kind(args[0])
    if origin in (typing.Union, types.UnionType):
        nullable = type(None) in args
        many = any(value_kind(a)[0] for a in args if a is not type(None))
        return many, nullable
    return origin in (list, tuple), annotation is type(None)


def _parse(key: str, value: str | list[str] | None, annotation: Any) -> Any:
    """Command-line text as the key's type expects it: a,b (or [a, b]) for a list or range, null
    for none; numbers stay text for pydantic to check."""
    many, nullable = value_kind(annotation)
    texts = [value] if isinstance(value, str) else list(value or [])
    if nullable and len(texts) == 1 and texts[0].strip().lower() in ("null", "none", "~"):
        return None
    if not many:
        if len(texts) != 1:
            raise DataError(f"config key {key}: give one value, not {len(texts)}")
        return texts[0]
    items: list[Any] = []
    for text in texts:
        if text.strip().startswith("["):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError:
                raise DataError(f"config key {key}: {text!r} is not a list") from None
            items.extend(parsed if isinstance(parsed, list) else [parsed])
        else:
            items.extend(part.strip() for part in text.split(",") if part.strip())
    return items


def set_key(raw: dict[str, Any], key: str, value: str | list[str] | None) -> dict[str, Any]:
    """``raw`` (a config as read from a file) with the dotted ``key`` set from command-line text."""
    raw = dict(raw)
    section, _, name = key.partition(".")
    given = raw.get("paths")
    paths = given if isinstance(given, dict) else _default_paths()
    known = [k for k, _ in config_keys(paths)]
    if key not in known:
        if section in ChuishaoConfig.model_fields and not name and key != "seed":
            example = next(k for k in known if k.startswith(key + "."))
            raise DataError(f"config key {key} is a section: give {key}.KEY (e.g. {example})")
        raise _unknown_key(key, known)
    if value == []:  # --KEY with nothing after it
        raise DataError(f"--{key} needs a value")
    if section == "paths":
        raw["paths"] = {**paths, name: _parse(key, value, str | None)}
    elif not name:
        raw[key] = _parse(key, value, ChuishaoConfig.model_fields[key].annotation)
    else:
        section_model = ChuishaoConfig.model_fields[section].annotation
        assert _is_section(section_model)  # a dotted key is known only in a section (paths aside)
        annotation = section_model.model_fields[name].annotation
        part = raw.get(section)
        raw[section] = {**(part if isinstance(part, dict) else {}), name: _parse(key, value, annotation)}
    return raw


def _problems(exc: ValidationError, given: Mapping[str, object]) -> str:
    lines = []
    for error in exc.errors()[:10]:
        key = ""
        for part in error["loc"]:
            key += f"[{part}]" if isinstance(part, int) else f"{'.' if key else ''}{part}"
        msg = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        if error["type"] not in ("missing", "extra_forbidden") and isinstance(value, str | int | float | type(None)):
            msg += f" (got {value!r})"
        top = key.split("[")[0]
        if top in given:
            msg += f", from --{top}"
        lines.append(f"{key}: {msg}")
    return "; ".join(lines)


# ---- writing a config ---------------------------------------------------------------------------

HEADER = """\
# chuishao config: the whole recipe of a model (data, text, features, classifier, review, seed).
# Written by `chuishao config show` from chuishao/config.py. Train with `chuishao train --config FILE`;
# change any key with --KEY VALUE (e.g. --classifier.C 1.0, --paths.shared DIR). Relative paths
# resolve against the current directory.
"""


def yaml_scalar(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    text = yaml.safe_dump(value, allow_unicode=True, width=1 << 20)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def render_config(config: ChuishaoConfig) -> str:
    """The config as documented YAML: every key in order, with its meaning as a comment."""
    out = [HEADER]

    def line(indent: str, name: str, value: Any, field: FieldInfo | None) -> None:
        note = f"  # {field.description}" if field is not None and field.description else ""
        if isinstance(value, list) and value:
            out.append(f"{indent}{name}:{note}")
            out.extend(f"{indent}  - {yaml_scalar(v)}" for v in value)
        else:
            out.append(f"{indent}{name}: {yaml_scalar(value)}{note}")

    for name, field in ChuishaoConfig.model_fields.items():
        value = getattr(config, name)
        if name == "paths":
            out.append(f"paths:  # {field.description}")
            for var, path in value.items():
                line("  ", var, path, None)
        elif isinstance(value, BaseModel):
            out.append(f"{name}:")
            for sub, subfield in type(value).model_fields.items():
                line("  ", sub, getattr(value, sub), subfield)
        else:
            line("", name, value, field)
    return "\n".join(out) + "\n"
