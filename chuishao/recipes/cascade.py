"""``model_type: cascade``: one config to a cascade model directory.

Steps: the classical model on all the data; the dev split's ids and their corpus near-copies; a classical model
without them (it scores the dev rows honestly); the encoder's training-only rows (our corpus labels, authored rows);
with ``transformer.pretrain_steps``, masked-LM pretraining of the encoder on the corpus (held-out and dev messages
left out); fine-tuning; ONNX export; with ``transformer.students``, self-training: the corpus messages that the
encoders do not train on and no held-out file holds, labelled by the dev-only classical model and the encoders so far
(``chuishao.transformer.pseudo_labels``), train more encoders beside the training rows, which join the mean; the
cascade's weight, gate, temperature and review threshold fitted on the dev rows; with ``transformer.refit``, each
encoder fine-tuned again on the whole training file
(dev included) and the same extra rows, and shipped in its dev twin's place.
Each step's output stays in a work folder with a marker holding the recipe it was made from and the contents of
the files it reads (SHA-256 of each data file and of the encoder folder's files), so a rerun of the same recipe on the
same files resumes after the last finished step (fine-tuning takes hours on two cores), and a changed recipe, a
relabelled data file or a re-imported encoder redoes the steps that read them. A fine-tuning stopped midway resumes
from its last complete checkpoint when the rerun's key is the one it started with.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from chuishao.config import ChuishaoConfig, DataConfig
from chuishao.errors import DataError
from chuishao.io.digest import fingerprint

TrainClassical = Callable[[ChuishaoConfig, Path], None]  # train a classical model by the recipe, save it to the folder

__all__ = ["TrainClassical", "check_recipe", "fingerprint", "train_cascade"]

_DEFAULT_FIELDS = {"label_field": "label", "id_field": "id", "text_field": "text", "title_field": "title"}


def _same_labels(classical: Path, rows_files: list[Path]) -> None:
    """A DataError unless the encoder will learn exactly the classical model's labels (the cascade mixes the two
    label by label): extra labels files, dropped leaking rows or held-out rows can leave one side a label short."""
    from chuishao.models.persistence import load_classical
    from chuishao.transformer.cascade_build import label_differences
    from chuishao.transformer.data import read_jsonl

    want = load_classical(classical).classes_
    have = {r["label"] for f in rows_files for r in read_jsonl(f)}
    if diff := label_differences(want, have, plural=True):  # the test is the wording's: the two never disagree
        raise DataError(f"the encoder's training rows ({', '.join(map(str, rows_files))}) {diff}: "
                        f"the cascade needs the same labels on both sides; check transformer.extra_labels, "
                        f"data.exclude and data.leakage")


def check_recipe(recipe: ChuishaoConfig) -> tuple[Path, Path]:
    """(the encoder folder, the one labelled JSONL the dev split is carved from), or a DataError saying what to change."""
    base = recipe.resolved_base()
    if base is None:
        raise DataError("model_type cascade needs transformer.base: an encoder folder (chuishao transformer "
                        "import-encoder OUT, or a local BERT-style encoder) given as --transformer.base DIR or --base DIR")
    if not (Path(base) / "config.json").is_file():
        raise DataError(f"transformer.base {base}: not an encoder folder (no config.json)")
    data = recipe.resolved_data()
    renamed = [f"data.{k} {getattr(data, k)!r}" for k, v in _DEFAULT_FIELDS.items() if getattr(data, k) != v]
    if renamed:
        raise DataError(f"model_type cascade reads the fields id, title, text and label only (the encoder's steps are "
                        f"not mapped), got {', '.join(renamed)}: rename the fields in the files, or train a classical model")
    if len(data.train) != 1 or not data.train[0].endswith(".jsonl"):
        raise DataError(f"model_type cascade needs exactly one JSONL file in data.train (the dev split is carved from "
                        f"it), got {data.train}")
    if data.relabel or data.sheets:
        raise DataError("model_type cascade: the encoder's fine-tuning reads neither data.relabel nor data.sheets; "
                        "leave them empty (or turn a filled sheet into JSONL for data.extra_data)")
    not_jsonl = [f for f in data.extra_data if not f.endswith(".jsonl")]
    if not_jsonl:
        raise DataError(f"model_type cascade: data.extra_data must be JSONL for the encoder, got {not_jsonl}")
    if data.extra_labels and not data.corpus:
        raise DataError("data.extra_labels need data.corpus (their texts)")
    if recipe.transformer.extra_rows and recipe.resolved_encoder_labels() and not data.corpus:
        raise DataError("transformer.extra_labels need data.corpus (their texts)")
    if recipe.transformer.students and not data.corpus:
        raise DataError("transformer.students need data.corpus: the unlabelled messages the students learn from")
    if recipe.transformer.students and recipe.transformer.refit:
        raise DataError("transformer.students and transformer.refit do not combine (a student learns from labels that "
                        "the dev-split encoders gave, so no twin refitted without them matches it): turn one off")
    return Path(base), Path(data.train[0])


# the transformer settings a step before fine-tuning reads; a step not named here depends on the whole recipe
_STEP_TRANSFORMER_FIELDS: dict[str, tuple[str, ...]] = {
    "classical": (),
    "dev-exclude": ("dev_fraction",),
    "dev-classical": ("dev_fraction",),
    "extra-rows": ("dev_fraction", "extra_rows", "extra_labels", "max_other"),
    "pretrain": ("dev_fraction", "max_length", "bf16", "threads", "pretrain_steps", "pretrain_lr", "pretrain_batch_size"),
}
_ENCODER_ONLY_STEPS = {"pretrain"}  # steps that read no classical setting: only the seed, the data and their own keys
_STEPS_READING_BASE = {"pretrain"}  # steps before fine-tuning that read the encoder folder
# settings that steps from fine-tuning on do not read: encoder k is the same whether 1 or 3 are averaged, int8
# is an export setting (max_share only acts when the cascade is fitted, after every step), refit and students only
# decide whether their steps run and which encoders ship; threads change the speed, not the weights. The students'
# steps read the teacher's settings, int8 and the number of encoders included (they score the corpus).
_STUDENTS = ("students", "student_confidence")
_STEP_IGNORES: dict[str, tuple[str, ...]] = {
    "finetune": ("encoders", "int8", "max_share", "refit", "threads", *_STUDENTS),
    "export-onnx": ("encoders", "max_share", "refit", "threads", *_STUDENTS),
    "refit": ("encoders", "int8", "max_share", "refit", "threads", *_STUDENTS),
    "export-refit": ("encoders", "max_share", "refit", "threads", *_STUDENTS),
    "pseudo-labels": ("max_share", "refit", "threads", "students"),
    "student": ("max_share", "refit", "threads", "students"),
    "export-student": ("max_share", "refit", "threads", "students"),
}
_PRETRAIN_FIELDS = ("pretrain_steps", "pretrain_lr", "pretrain_batch_size")


def _fingerprints(paths: Iterable[str | None]) -> dict[str, Any]:
    return {str(p): fingerprint(p) for p in paths if p}


def _key(recipe: ChuishaoConfig, step: str, bf16: bool | None = None) -> str:
    """What a step's output depends on: the recipe with its paths resolved and the contents of the files it reads
    (every data file; the encoder's extra labels from the extra rows on; the encoder folder from pretraining or
    fine-tuning on); the classical steps leave out the encoder's settings, so that changing how the encoder is
    fine-tuned keeps the classical models already trained.
    ``bf16``: what ``transformer.bf16: auto`` resolved to on this machine (a work folder moved to a CPU without
    bfloat16 fine-tunes again rather than reuse an encoder trained otherwise)."""
    dumped = recipe.model_dump(mode="json")
    if bf16 is not None and dumped["transformer"].get("bf16") == "auto":
        dumped["transformer"]["bf16"] = bf16
    if not dumped["transformer"].get("pretrain_steps"):  # off: its settings read by nothing
        for name in _PRETRAIN_FIELDS:
            dumped["transformer"].pop(name, None)
    for name in _STEP_IGNORES.get(re.sub(r"-\d+$", "", step), ()):  # finetune-2 reads what finetune reads
        dumped["transformer"].pop(name, None)
    before_encoder = step in _STEP_TRANSFORMER_FIELDS
    if before_encoder:
        keep = _STEP_TRANSFORMER_FIELDS[step]
        dumped["transformer"] = {k: v for k, v in dumped["transformer"].items() if k in keep}
        dumped.pop("model_type", None)
    if step in _ENCODER_ONLY_STEPS:
        dumped = {k: dumped[k] for k in ("seed", "data", "transformer")}
    reads_base = not before_encoder or step in _STEPS_READING_BASE
    data = recipe.resolved_data()
    files = [*data.train, data.corpus, *data.extra_labels, *data.extra_data, *data.sheets, *data.relabel,
             *data.exclude, data.taxonomy if data.taxonomy not in ("default", "none") else None]
    if not before_encoder or "extra_labels" in _STEP_TRANSFORMER_FIELDS[step]:
        files += recipe.resolved_encoder_labels()
    base = recipe.resolved_base() if reads_base else None
    blob = json.dumps({"step": step, "recipe": dumped, "data": data.model_dump(), "base": base,
                       "contents": _fingerprints(files), "base_contents": fingerprint(base)},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class _Work:
    """The work folder: a step runs unless its marker says it finished for this recipe."""

    def __init__(self, folder: Path, recipe: ChuishaoConfig, say: Callable[[str], None],
                 bf16: bool | None = None) -> None:
        self.folder, self.recipe, self.say, self.bf16 = folder, recipe, say, bf16
        folder.mkdir(parents=True, exist_ok=True)

    def forget(self, *names: str) -> None:
        """Drop these steps' markers: they run again, from the start."""
        for name in names:
            (self.folder / f"{name}.done.json").unlink(missing_ok=True)
            (self.folder / f"{name}.started.json").unlink(missing_ok=True)

    @staticmethod
    def _marked(marker: Path) -> str | None:
        try:
            return str(json.loads(marker.read_text(encoding="utf-8")).get("key"))
        except (OSError, ValueError, AttributeError):  # absent, or cut short by a kill
            return None

    def step(self, name: str, output: Path, run: Callable[[], object], resumable: bool = False) -> None:
        """Run ``run`` unless ``name`` finished for this key. ``resumable``: an unfinished output of a run started
        with the same key (``STEP.started.json``) is kept for ``run`` to resume; any other is removed first."""
        marker, started = self.folder / f"{name}.done.json", self.folder / f"{name}.started.json"
        key = _key(self.recipe, name, self.bf16)
        if marker.is_file() and output.exists() and self._marked(marker) == key:
            self.say(f"{name}: done before, kept ({output})")
            return
        marker.unlink(missing_ok=True)
        resume = resumable and output.is_dir() and self._marked(started) == key
        if not resume:
            started.unlink(missing_ok=True)
            if output.is_dir():
                shutil.rmtree(output)
        started.write_text(json.dumps({"key": key}), encoding="utf-8")
        self.say(f"{name}: resuming its unfinished run ({output})" if resume else f"{name}: running")
        result = run()
        marker.write_text(json.dumps({"key": key, "result": result}, ensure_ascii=False, default=str), encoding="utf-8")
        started.unlink(missing_ok=True)


def _encoder_meta(encoder_dir: Path) -> dict[str, Any]:
    """What fine-tuning saved beside the encoder (labels, temperature, steps, rows)."""
    from chuishao.models.onnx_encoder import META_FILE

    return dict(json.loads((encoder_dir / META_FILE).read_text(encoding="utf-8")))


def _temperatures(onnx_dirs: Iterable[Path]) -> list[float]:
    """The exported encoders' temperatures: a fine-tuning run again gives another."""
    return [float(_encoder_meta(d)["temperature"]) for d in onnx_dirs]


def _stale_students(work: Path, teachers: list[Path]) -> list[str]:
    """The steps to redo when the finished pseudo-labels came from other runs of the teachers (fine-tuned again since,
    or not recorded): the pseudo-labels and every student's fine-tuning and export, however many there were."""
    try:
        result = json.loads((work / "pseudo-labels.done.json").read_text(encoding="utf-8"))["result"]
    except (OSError, ValueError, KeyError, TypeError):  # no finished step, or one cut short: nothing to redo
        return []
    made_by = result.get("teachers") if isinstance(result, dict) else None
    if made_by == _temperatures(teachers):
        return []
    return ["pseudo-labels", *sorted(m.name.removesuffix(".done.json") for m in work.glob("*student*.done.json"))]


def _stale_refit(refit_dir: Path, twin: Path) -> bool:
    """Whether a refitted encoder was made from another run of its twin (the twin fine-tuned again since)."""
    try:
        return bool(_encoder_meta(refit_dir)["temperature"] != _encoder_meta(twin)["temperature"])
    except FileNotFoundError:  # not refitted yet, or stopped before it saved
        return False


def train_cascade(recipe: ChuishaoConfig, out: Path, work: Path, train_classical: TrainClassical,
                  say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Build the cascade model directory ``out`` from ``recipe``; returns the cascade's fitted parameters and figures."""
    from chuishao.transformer.cascade_build import build_cascade, dev_exclusion, messages_not_held
    from chuishao.transformer.data import extra_rows, read_jsonl
    from chuishao.transformer.finetune import FinetuneConfig, finetune, resolve_bf16
    from chuishao.transformer.onnx_export import export_onnx
    from chuishao.transformer.pretrain import PretrainConfig, pretrain
    from chuishao.transformer.pseudo_labels import pseudo_label

    base, train_file = check_recipe(recipe)
    data, tc, seed = recipe.resolved_data(), recipe.transformer, recipe.seed
    corpus = Path(data.corpus) if data.corpus else None
    bf16 = resolve_bf16(tc.bf16)
    w = _Work(work, recipe, say, bf16)
    classical, dev_classical = work / "classical", work / "dev-classical"
    exclude, extra, encoder, onnx = work / "dev-exclude.jsonl", work / "extra.jsonl", work / "encoder", work / "onnx"
    as_classical = recipe.model_copy(update={"model_type": "classical"})

    w.step("classical", classical, lambda: train_classical(as_classical, classical))
    w.step("dev-exclude", exclude, lambda: dev_exclusion(train_file, exclude, corpus, tc.dev_fraction, seed))

    def without_dev() -> None:
        held_out = recipe.data.model_dump()
        held_out["exclude"] = [*held_out["exclude"], str(exclude)]
        train_classical(as_classical.model_copy(update={"data": DataConfig.model_validate(held_out)}), dev_classical)

    w.step("dev-classical", dev_classical, without_dev)

    def extra_rows_file() -> int:
        ids = [str(r["id"]) for r in read_jsonl(exclude)]
        rows = (extra_rows(corpus, recipe.resolved_encoder_labels(), data.extra_data, ids, tc.max_other, seed)
                if tc.extra_rows else [])
        extra.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return len(rows)

    w.step("extra-rows", extra, extra_rows_file)
    _same_labels(classical, [train_file, extra])  # before hours of fine-tuning, not after them
    start = base
    if tc.pretrain_steps:
        start = work / "pretrained"
        texts = [str(corpus)] if corpus else []

        def pretrain_encoder() -> dict[str, Any]:
            summary = pretrain(PretrainConfig(
                model_dir=str(base), texts=[*texts, str(train_file)], out_dir=str(start),
                exclude=[*data.exclude, str(exclude)], max_length=tc.max_length, max_steps=tc.pretrain_steps,
                batch_size=tc.pretrain_batch_size, lr=tc.pretrain_lr, seed=seed, threads=tc.threads, bf16=bf16))
            return {k: summary[k] for k in ("kept", "near_copies", "windows", "eval_loss_before", "eval_loss_after")}

        w.step("pretrain", start, pretrain_encoder)

    def tune(enc_dir: Path, tuning_seed: int, twin: Path | None = None, more: Path | None = None) -> dict[str, Any]:
        """Fine-tune on the training file less the dev split; with ``twin`` (that seed's dev-split encoder) on every
        row instead, as many steps as the twin's best checkpoint took scaled to the rows, and the twin's temperature;
        ``more``: training rows beside the extra rows (a student's pseudo-labelled messages)."""
        steps, temperature = -1, None
        if twin is not None:
            meta = _encoder_meta(twin)
            rows = len(read_jsonl(train_file)) + len(read_jsonl(extra))
            steps = max(1, round((meta.get("best_step") or meta["global_step"]) * rows / meta["train_rows"]))
            temperature = float(meta["temperature"])
        summary = finetune(FinetuneConfig(
            model_dir=str(start), train=str(train_file), out_dir=str(enc_dir),
            extra_train=[str(extra)] + ([str(more)] if more else []),
            max_length=tc.max_length, epochs=tc.epochs, max_steps=steps, batch_size=tc.batch_size, lr=tc.lr,
            head_lr=tc.head_lr, dev_fraction=tc.dev_fraction if twin is None else 0.0, seed=tuning_seed,
            split_seed=seed, evals_per_epoch=tc.evals_per_epoch, patience=tc.patience, threads=tc.threads, bf16=bf16,
            temperature=temperature, resume=True))
        return summary["dev"] if twin is None else {"train_rows": summary["train_rows"], "steps": summary["global_step"]}

    def export(enc_dir: Path, onnx_dir: Path) -> str:
        return str(export_onnx(enc_dir, onnx_dir, quantize=tc.int8))

    onnx_dirs, shipped = [], []
    for k in range(1, tc.encoders + 1):  # encoder k: fine-tuning seed seed + k - 1, the same dev split
        suffix = "" if k == 1 else f"-{k}"
        enc_dir, onnx_dir = encoder.with_name(encoder.name + suffix), onnx.with_name(onnx.name + suffix)
        w.step(f"finetune{suffix}", enc_dir, partial(tune, enc_dir, seed + k - 1), resumable=True)
        w.step(f"export-onnx{suffix}", onnx_dir, partial(export, enc_dir, onnx_dir))
        onnx_dirs.append(onnx_dir)
        if tc.refit:  # the same seed on every row; the dev twin's weight, gate and temperature carry over
            refit_dir, refit_onnx = work / f"encoder-refit{suffix}", work / f"onnx-refit{suffix}"
            if _stale_refit(refit_dir, enc_dir):
                w.forget(f"refit{suffix}", f"export-refit{suffix}")
            w.step(f"refit{suffix}", refit_dir, partial(tune, refit_dir, seed + k - 1, enc_dir), resumable=True)
            w.step(f"export-refit{suffix}", refit_onnx, partial(export, refit_dir, refit_onnx))
            shipped.append(refit_onnx)
    pseudo, teachers = work / "pseudo-labels.jsonl", list(onnx_dirs)

    def label_corpus() -> dict[str, Any]:
        assert corpus is not None  # check_recipe: students need the corpus
        # the encoders' training rows, the dev rows and the held-out files: what a student must not learn from again
        held: list[str | Path] = [train_file, *data.exclude, exclude, extra, *data.extra_data]
        messages, left_out = messages_not_held([corpus], held)
        labelled = pseudo_label(dev_classical, teachers, messages, pseudo, int8=tc.int8,
                                min_confidence=tc.student_confidence, max_other=tc.max_other, seed=seed,
                                threads=tc.threads)
        say(f"pseudo-labels: {labelled['rows']} corpus messages for the students ({labelled['confident']} of "
            f"{labelled['scored']} labelled with at least {tc.student_confidence:g}, OTHER among them capped at "
            f"{tc.max_other}; {left_out['near_copies']} near-copies of training or held-out messages and "
            f"{labelled['refused']} the classical model refuses left out)")
        return {**left_out, **labelled, "teachers": _temperatures(teachers)}

    if tc.students:
        w.forget(*_stale_students(work, teachers))
    for k in range(1, tc.students + 1):  # student k: seed seed + k - 1, the encoders' dev split, the teachers' labels
        suffix = "" if k == 1 else f"-{k}"
        if k == 1:
            w.step("pseudo-labels", pseudo, label_corpus)
        student, student_onnx = work / f"student{suffix}", work / f"onnx-student{suffix}"
        w.step(f"student{suffix}", student, partial(tune, student, seed + k - 1, None, pseudo), resumable=True)
        w.step(f"export-student{suffix}", student_onnx, partial(export, student, student_onnx))
        onnx_dirs.append(student_onnx)
    params = build_cascade(classical, dev_classical, onnx_dirs, train_file, out, int8=tc.int8, fraction=tc.dev_fraction,
                           seed=seed, max_share=tc.max_share, ship=shipped or None,
                           metadata={"recipe": recipe.portable().model_dump(mode="json")})
    return {"weight": params.weight, "gate": params.gate, "temperature": params.temperature,
            "review_threshold": params.review_threshold, "dev": params.dev}
