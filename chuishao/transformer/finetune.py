"""Fine-tune an imported e5 encoder (mean pooling + linear head) on the whistle JSONL with the HF Trainer.

The dev split is carved from the training file (stratified, seeded); early stopping, the best checkpoint and
temperature scaling all use it. The saved folder holds config.json (id2label/label2id), model.safetensors,
the tokenizer, and chuishao_transformer.json (labels, temperature, input format, dev figures, settings).
With ``resume``, a run stopped midway continues from its last complete checkpoint, provided that it was started
with the same settings on the same files (``chuishao_finetune_run.json``); each checkpoint's ``trainer_state.json``
holds the seconds trained up to it (``TrainClockCallback``'s state), so a resumed run's ``train_seconds`` counts the
whole training.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    BertModel,
    BertPreTrainedModel,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
    set_seed,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.trainer_callback import ExportableState

from chuishao.errors import DataError, ModelLoadError
from chuishao.transformer.data import TitleMode, build_dataset, read_jsonl, sqrt_inverse_frequency, stratified_split

META_FILE = "chuishao_transformer.json"
RUN_FILE = "chuishao_finetune_run.json"  # what a run was started with (settings, input files' contents): resume guard


class MeanPoolClassifier(BertPreTrainedModel):
    """BERT encoder, attention-masked mean pooling over the last hidden state, dropout, linear head."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.register_buffer("class_weights", torch.ones(config.num_labels), persistent=False)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None, **_: Any) -> SequenceClassifierOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels, weight=self.class_weights.to(logits.dtype))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast is about twice as fast."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own probes (private: may go)
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_bf16(setting: bool | str) -> bool:
    """The ``bf16`` setting (true, false or "auto") as this machine runs it: auto is on where the CPU has bf16."""
    return cpu_has_bf16() if setting == "auto" else bool(setting)


@dataclass
class FinetuneConfig:
    model_dir: str
    train: str
    out_dir: str
    extra_train: list[str] = field(default_factory=list)  # added to the training side only, never to dev
    max_length: int = 128
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 8e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    dev_fraction: float = 0.15
    seed: int = 0
    title_mode: TitleMode = "prefix"
    prefix: str = "query: "
    class_weights: bool = True
    evals_per_epoch: int = 2
    patience: int = 3
    threads: int = 1
    log_every: int = 10
    limit_train: int = 0  # >0: keep the first N training rows (smoke runs)
    split_seed: int | None = None  # seed of the dev split (None: seed); encoders averaged in one cascade share it
    bf16: bool = False  # bfloat16 autocast (fp32 master weights): about twice as fast where the CPU has AVX512-BF16 or AMX
    temperature: float | None = None  # with dev_fraction 0 (no dev to fit one on): the same run's with dev; else unused
    resume: bool = False  # continue a run of these settings on these files stopped midway, from its last checkpoint
    # with resume, for a run of other settings or files in out_dir: True, remove its checkpoints and start at step 0
    # (the cascade recipe, whose step keys already decided); False, a DataError naming what differs (the CLI)
    restart_if_changed: bool = True


class ProgressCallback(TrainerCallback):
    """One flushed line every ``every`` steps: step, loss, seconds per step, ETA."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.t0 = time.time()
        self.step0 = 0
        self.loss: float | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kw: Any) -> None:
        self.t0, self.step0 = time.time(), state.global_step

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
        if logs and "eval_macro_f1" in logs:
            print(f"[eval] step {state.global_step} dev macro-F1 {logs['eval_macro_f1']:.4f} "
                  f"acc {logs['eval_accuracy']:.4f} loss {logs['eval_loss']:.4f}", flush=True)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kw: Any) -> None:
        if state.global_step % self.every:
            return
        done = state.global_step - self.step0
        sps = (time.time() - self.t0) / max(done, 1)
        eta = sps * (state.max_steps - state.global_step)
        print(f"[train] step {state.global_step}/{state.max_steps} epoch {state.epoch:.2f} loss "
              f"{self.loss if self.loss is not None else float('nan'):.4f} {sps:.2f} s/step "
              f"ETA {eta / 60:.1f} min", flush=True)


class TrainClockCallback(TrainerCallback, ExportableState):
    """The training's seconds across a resume: ``before`` (those of the checkpoint resumed from) plus this process's.
    As an ``ExportableState`` the seconds are saved in each checkpoint's ``trainer_state.json``, written with the
    rest of the Trainer's state, and a resume (``restore_callback_states_from_checkpoint``) makes a new instance
    with ``before`` from there: read the clock from ``trainer.callback_handler.callbacks`` after ``train()``."""

    def __init__(self, before: float = 0.0) -> None:
        self.before = before
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.started

    def state(self) -> dict[str, Any]:
        return {"args": {"before": self.seconds()}, "attributes": {}}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kw: Any) -> None:
        self.started = time.perf_counter()
        # a checkpoint of an older version holds no clock state; the Trainer's save updates only entries it has
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())


class ChuishaoTrainer(Trainer):
    """Trainer with two AdamW learning rates: the encoder's and the (higher) head's."""

    head_lr: float = 1e-3
    optimizer: Any  # set by Trainer (declared for the type checker: transformers is not analysed)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            model = model or self.model
            decay, no_decay, head = [], [], []
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                if name.startswith("classifier."):
                    head.append(p)
                elif p.ndim < 2:
                    no_decay.append(p)
                else:
                    decay.append(p)
            lr, wd = self.args.learning_rate, self.args.weight_decay
            self.optimizer = torch.optim.AdamW([
                {"params": decay, "lr": lr, "weight_decay": wd},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0},
                {"params": head, "lr": self.head_lr, "weight_decay": 0.0},
            ], lr=lr)
        return self.optimizer


def macro_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y_true, y_pred))}


def _compute_metrics(pred: Any) -> dict[str, float]:
    return macro_scores(np.asarray(pred.label_ids), np.asarray(pred.predictions).argmax(-1))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on (logits, y)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / math.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(res.x))


def _labelled_rows(path: str) -> list[dict]:
    """The rows of a JSONL file (``read_jsonl``'s errors), or a DataError for a row without a label."""
    rows = read_jsonl(path)
    for n, row in enumerate(rows, 1):
        if row.get("label") in (None, ""):
            raise DataError(f"{path}: row {n} has no label (the encoder reads the fields id, title, text and label)")
    return rows


def load_split(cfg: FinetuneConfig) -> tuple[list[dict], list[dict]]:
    """(train rows, dev rows): the training file minus its stratified dev split, plus the extra files;
    with ``dev_fraction`` 0 every row trains and dev is empty."""
    rows = _labelled_rows(cfg.train)
    if not rows:
        raise DataError(f"{cfg.train}: no rows")
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    if cfg.dev_fraction > 0:
        tr, dv = stratified_split([r["label"] for r in rows], cfg.dev_fraction, split_seed)
        if not dv:
            raise DataError(f"{cfg.train}: a dev split of {cfg.dev_fraction:g} is empty (no label has two rows); "
                            f"add rows, or train on every row with dev_fraction 0 and a temperature")
    else:
        tr, dv = list(range(len(rows))), []
    train = [rows[i] for i in tr]
    for extra in cfg.extra_train:
        train.extend(_labelled_rows(extra))
    if cfg.limit_train:
        train = train[:cfg.limit_train]
    return train, [rows[i] for i in dv]


def check_config(cfg: FinetuneConfig) -> None:
    """A DataError for a dev share outside [0, 1), a temperature missing, given where it is unused, or not above 0,
    or a length outside 8 to 512 pieces."""
    if not 8 <= cfg.max_length <= 512:
        raise DataError(f"max_length {cfg.max_length}: from 8 to 512 pieces")
    if not 0 <= cfg.dev_fraction < 1:
        raise DataError(f"dev_fraction {cfg.dev_fraction}: from 0 (no dev split) to below 1")
    if cfg.dev_fraction == 0 and cfg.temperature is None:
        raise DataError("dev_fraction 0 trains on every row and fits no temperature: give the temperature of the same "
                        "run with a dev split")
    if cfg.dev_fraction > 0 and cfg.temperature is not None:
        raise DataError("a temperature is given only with dev_fraction 0 (with a dev split it is fitted there)")
    if cfg.temperature is not None and not (math.isfinite(cfg.temperature) and cfg.temperature > 0):
        raise DataError(f"temperature {cfg.temperature}: a number above 0")


# what transformers raises for a folder it cannot load, by what is missing or malformed
_LOAD_ERRORS = (OSError, ValueError, ImportError, KeyError, TypeError, AttributeError, RuntimeError)


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _load_base(model_dir: str, labels: list[str]) -> tuple[Any, MeanPoolClassifier]:
    """(tokenizer, model with a fresh head for ``labels``) of an encoder folder, or one ModelLoadError line."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{model_dir}: not an encoder folder (no config.json; chuishao transformer import-encoder "
                             f"makes one)")
    label2id = {lab: i for i, lab in enumerate(labels)}
    try:
        tok = AutoTokenizer.from_pretrained(model_dir)
    except _LOAD_ERRORS as exc:
        missing = [n for n in ("tokenizer.json", "tokenizer_config.json") if not (folder / n).is_file()]
        why = f"no {' nor '.join(missing)}, as import-encoder writes them" if missing else _one_line(exc)
        raise ModelLoadError(f"{model_dir}: no tokenizer that loads ({why})") from None
    try:
        model = MeanPoolClassifier.from_pretrained(model_dir, num_labels=len(labels), label2id=label2id,
                                                   id2label={i: lab for lab, i in label2id.items()})
    except _LOAD_ERRORS as exc:
        raise ModelLoadError(f"{model_dir}: the encoder does not load as a BERT model: {_one_line(exc)}") from None
    model.config.architectures = ["MeanPoolClassifier"]
    return tok, model


def _run_record(cfg: FinetuneConfig) -> dict[str, Any]:
    """What a run reads: its settings (less the thread count, logging and the output folder) and the contents of
    the encoder folder and the training files; a checkpoint is resumed only by a run with the same record."""
    from chuishao.io.digest import fingerprint

    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("threads", "log_every", "resume", "restart_if_changed", "out_dir")}
    inputs = {p: fingerprint(p) for p in (cfg.model_dir, cfg.train, *cfg.extra_train)}
    return json.loads(json.dumps({"settings": settings, "inputs": inputs}))  # as read back from the file


def record_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two run records, in a few words: the settings' names, then the inputs' file names
    ("lr, seed, inputs: train.jsonl"); "" where they are the same."""
    def differing(a: Any, b: Any) -> list[str]:
        a, b = (x if isinstance(x, dict) else {} for x in (a, b))
        return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))

    settings = differing(old.get("settings"), new.get("settings"))
    inputs = sorted({Path(p).name or p for p in differing(old.get("inputs"), new.get("inputs"))})
    return ", ".join(settings + ([f"inputs: {', '.join(inputs)}"] if inputs else []))


def _last_checkpoint(folder: Path) -> Path | None:
    """The checkpoint of the highest step that was saved whole (the Trainer writes trainer_state.json last)."""
    found = []
    for ckpt in folder.glob("checkpoint-*"):
        try:
            step = int(ckpt.name.removeprefix("checkpoint-"))
            json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        if any((ckpt / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
            found.append((step, ckpt))
    return max(found)[1] if found else None


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Train, save to ``cfg.out_dir``, return the summary. With a dev split: early stopping, the best dev checkpoint
    and a temperature fitted on dev; with ``dev_fraction`` 0: every row, a fixed length (``epochs`` or ``max_steps``),
    the last weights and ``cfg.temperature``. With ``cfg.resume``, a run of the same settings on the same files that
    stopped midway continues from its last complete checkpoint (one that finished returns its summary); a run of
    other settings or files there is started over (said in one line) or, with ``restart_if_changed`` False, a
    DataError naming what differs; without ``resume`` the output's old checkpoints are removed and training starts
    at step 0. The output folder is made only once the data and the encoder have loaded."""
    check_config(cfg)
    torch.set_num_threads(cfg.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    set_seed(cfg.seed)
    out = Path(cfg.out_dir)
    train_rows, dev_rows = load_split(cfg)
    labels = sorted({r["label"] for r in train_rows} | {r["label"] for r in dev_rows})
    if len(labels) < 2:
        raise DataError(f"{cfg.train}: {len(labels)} label{'' if len(labels) == 1 else 's'} "
                        f"({', '.join(map(str, labels)) or 'no rows'}): a classifier needs at least two")
    label2id = {lab: i for i, lab in enumerate(labels)}
    tok, model = _load_base(cfg.model_dir, labels)
    record = _run_record(cfg)
    resume_from = None
    if cfg.resume:
        try:
            old = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        same_run = old == record
        if not same_run and (old is not None or (out / "checkpoints").is_dir()):
            diff = (record_differences(old, record) or "its record") if isinstance(old, dict) else (
                "no readable record of its settings")
            if not cfg.restart_if_changed:
                raise DataError(f"{out} holds a run of other settings or files ({diff}): resuming it is refused; "
                                f"rerun without --resume to start over at step 0 (which removes its checkpoints)")
            print(f"[start over] {out} holds a run of other settings or files ({diff}): its checkpoints are "
                  f"removed, training starts at step 0", flush=True)
        if same_run and (out / META_FILE).is_file():  # it finished; only its caller's marker was not written
            print(f"[done before] {out}", flush=True)
            return dict(json.loads((out / META_FILE).read_text(encoding="utf-8")))
        resume_from = _last_checkpoint(out / "checkpoints") if same_run else None
    if resume_from is None:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # another run's: never resumed, nor rotated with ours
        (out / META_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    if cfg.class_weights:
        model.class_weights = torch.tensor(sqrt_inverse_frequency([r["label"] for r in train_rows], labels))
    train_ds = build_dataset(train_rows, tok, label2id, cfg.max_length, cfg.title_mode, cfg.prefix)
    dev_ds = build_dataset(dev_rows, tok, label2id, cfg.max_length, cfg.title_mode, cfg.prefix) if dev_rows else None
    assert (dev_ds is not None) == (cfg.dev_fraction > 0)  # load_split refuses an empty split
    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * cfg.grad_accum))
    eval_steps = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    if cfg.max_steps > 0:
        eval_steps = min(eval_steps, cfg.max_steps)
    # Without dev rows nothing picks a checkpoint: the length is the caller's (a dev run's), the last weights kept;
    # checkpoints are still saved (the last one only) for a stopped run to resume from.
    strategy = "steps" if dev_ds is not None else "no"
    print(f"[data] train {len(train_ds)} dev {len(dev_rows)} labels {len(labels)} steps/epoch {steps_per_epoch} "
          + (f"eval every {eval_steps} steps" if dev_ds is not None else "no dev: last weights kept")
          + f", threads {cfg.threads}{', bf16' if cfg.bf16 else ''}", flush=True)
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=32, gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay, warmup_steps=int(cfg.warmup_ratio * steps_per_epoch * cfg.epochs),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, lr_scheduler_type="linear", eval_strategy=strategy, eval_steps=eval_steps,
        save_strategy="steps", save_steps=eval_steps, save_total_limit=2 if dev_ds is not None else 1,
        load_best_model_at_end=dev_ds is not None, restore_callback_states_from_checkpoint=True,
        metric_for_best_model="macro_f1", greater_is_better=True, logging_steps=cfg.log_every,
        report_to=[], use_cpu=True, seed=cfg.seed, data_seed=cfg.seed, disable_tqdm=True,
        dataloader_num_workers=0, save_only_model=False, bf16=cfg.bf16)
    callbacks: list[TrainerCallback] = [TrainClockCallback(), ProgressCallback(cfg.log_every)]
    if dev_ds is not None:
        callbacks.insert(0, EarlyStoppingCallback(cfg.patience))
    trainer = ChuishaoTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=dev_ds,
                              processing_class=tok, data_collator=DataCollatorWithPadding(tok),
                              compute_metrics=_compute_metrics, callbacks=callbacks)
    trainer.head_lr = cfg.head_lr
    resumed_step: int | None = None
    seconds_before: float | None = 0.0  # None: resumed from a checkpoint without a time record
    if resume_from is not None:
        state = json.loads((resume_from / "trainer_state.json").read_text(encoding="utf-8"))
        resumed_step = int(state["global_step"])
        clock_state = (state.get("stateful_callbacks") or {}).get(TrainClockCallback.__name__)
        if isinstance(clock_state, dict):
            seconds_before = float(clock_state.get("args", {}).get("before", 0.0))
            print(f"[resume] from {resume_from} (step {resumed_step}, {seconds_before / 60:.1f} min trained)",
                  flush=True)
        else:
            seconds_before = None
            print(f"[resume] from {resume_from} (step {resumed_step}): no time record: train_seconds counts from "
                  f"step {resumed_step}", flush=True)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    # a resume replaced the clock by one restored from the checkpoint: the handler's is the one that ran
    (clock,) = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, TrainClockCallback)]
    train_s = clock.seconds()  # the whole training's, the part before a resume included
    dev: dict[str, float] | None = None
    temperature = cfg.temperature or 1.0
    if dev_ds is not None:
        pred = trainer.predict(dev_ds)
        dev_logits = np.asarray(pred.predictions, dtype=np.float64)
        dev_y = np.asarray(pred.label_ids)
        temperature = fit_temperature(dev_logits, dev_y)
        dev = macro_scores(dev_y, dev_logits.argmax(1))
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    if dev_ds is None:  # without dev the last weights are the model: its checkpoints only served a resume
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    summary = {
        "labels": labels, "temperature": temperature, "max_length": cfg.max_length, "title_mode": cfg.title_mode,
        "prefix": cfg.prefix, "pooling": "mean", "dev": dev,
        "dev_rows": len(dev_rows), "train_rows": len(train_rows), "train_seconds": round(train_s, 1),
        "best_checkpoint": trainer.state.best_model_checkpoint, "global_step": trainer.state.global_step,
        "best_step": trainer.state.best_global_step if dev_ds is not None else None,
        "resumed_from_step": resumed_step,
        "train_seconds_before_resume": round(seconds_before, 1) if seconds_before is not None else None,
        "config": asdict(cfg),
    }
    (out / META_FILE).write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    figures = f"dev macro-F1 {dev['macro_f1']:.4f} acc {dev['accuracy']:.4f}" if dev else "no dev"
    print(f"[done] {figures} T={temperature:.3f} in {train_s / 60:.1f} min -> {out}", flush=True)
    return summary


def load_classifier(model_dir: str | Path) -> tuple[MeanPoolClassifier, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, metadata) of a fine-tuned folder; a bare checkpoint gets default metadata."""
    model_dir = Path(model_dir)
    model = MeanPoolClassifier.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    meta_path = model_dir / META_FILE
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        meta = {"labels": [model.config.id2label[i] for i in range(model.config.num_labels)], "temperature": 1.0,
                "max_length": 128, "title_mode": "prefix", "prefix": "query: "}
    return model, tok, meta


@torch.no_grad()
def predict_logits(model: MeanPoolClassifier, tok: Any, meta: dict[str, Any], records: list[dict],
                   batch_size: int = 32) -> np.ndarray:
    """Raw logits [n, labels] for records (title/text), in the saved input format."""
    from chuishao.transformer.data import format_text

    out = []
    for i in range(0, len(records), batch_size):
        texts = [format_text(r, meta["title_mode"], meta["prefix"]) for r in records[i:i + batch_size]]
        enc = tok(texts, truncation=True, max_length=meta["max_length"], padding=True, return_tensors="pt")
        out.append(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)
