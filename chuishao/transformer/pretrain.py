"""Continue an encoder's masked-language-model pretraining on our own unlabelled messages (domain adaptation).

The encoder folder (``import-encoder``'s output or any local BERT-style encoder) is loaded with a masked-LM head
(``BertForMaskedLM``: the output projection tied to the word embeddings; a folder without an LM head, as e5's, gets
a fresh one), is trained on the messages of ``texts`` in the fine-tuning's input format, cut into windows of
``max_length`` pieces (a long letter gives several windows), and is saved as a plain encoder folder again:
fine-tuning starts from it as from the imported one. Held-out messages never train it: the ids of the ``exclude`` files and the
messages that copy or nearly copy them (``cascade_build.messages_not_held``) are left out, and counted.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chuishao.errors import DataError
from chuishao.io.record import FieldMap
from chuishao.transformer.data import TitleMode, format_text

__all__ = ["PRETRAIN_META", "PretrainConfig", "pretrain", "pretraining_rows"]

PRETRAIN_META = "chuishao_pretrain.json"


@dataclass
class PretrainConfig:
    model_dir: str
    texts: list[str]  # files of messages (JSONL, CSV, Parquet, Excel: id, title, text); labels are not read
    out_dir: str
    exclude: list[str] = field(default_factory=list)  # files of held-out messages: their ids and near-copies stay out
    max_length: int = 128
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    mlm_probability: float = 0.15
    eval_fraction: float = 0.05  # messages (all their windows) kept aside to report the masked-LM loss before and after
    seed: int = 0
    title_mode: TitleMode = "prefix"
    prefix: str = "query: "
    threads: int = 1
    bf16: bool = False
    log_every: int = 10
    limit: int = 0  # >0: the first N messages only (smoke runs)


def pretraining_rows(texts: list[str], exclude: list[str], limit: int = 0,
                     fields: FieldMap | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The messages to pretrain on and counts: ``cascade_build.messages_not_held`` (held-out ids and their copies
    left out), the first ``limit`` of them when ``limit`` is set; a DataError when none is left."""
    from chuishao.transformer.cascade_build import messages_not_held

    kept, counts = messages_not_held(texts, exclude, fields)
    if limit:
        kept = kept[:limit]
    if not kept:
        raise DataError(f"no message left to pretrain on in {', '.join(texts)} (after leaving out {', '.join(exclude)})")
    return kept, {**counts, "kept": len(kept)}


def _windows(rows: list[dict[str, Any]], tok: Any, cfg: PretrainConfig) -> tuple[list[list[int]], list[int]]:
    """Token windows of at most max_length pieces (special tokens included) covering each message in turn, and the
    message each window comes from."""
    texts = [format_text(r, cfg.title_mode, cfg.prefix) for r in rows]
    enc = tok(texts, truncation=True, max_length=cfg.max_length, return_overflowing_tokens=True)
    keep = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > 4]  # a last window of a piece or two teaches nothing
    return [enc["input_ids"][i] for i in keep], [enc["overflow_to_sample_mapping"][i] for i in keep]


def _split_by_message(windows: list[list[int]], message_of: list[int], fraction: float,
                      seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """(training windows, eval windows): a seeded share of the messages gives all its windows to eval."""
    messages = sorted(set(message_of))
    n_eval = round(len(messages) * fraction) if len(messages) > 1 else 0
    chosen = set(np.random.default_rng(seed).permutation(messages)[:n_eval].tolist())
    train = [w for w, m in zip(windows, message_of, strict=True) if m not in chosen]
    order = np.random.default_rng(seed + 1).permutation(len(train))  # the Trainer shuffles too; a stable start
    return [train[i] for i in order], [w for w, m in zip(windows, message_of, strict=True) if m in chosen]


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Masked-LM training of ``cfg.model_dir`` on the messages; the encoder (no LM head) and tokenizer go to
    ``cfg.out_dir`` with chuishao_pretrain.json (counts, the eval messages' masked-LM loss before and after, settings)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from chuishao.transformer.finetune import ProgressCallback

    torch.set_num_threads(cfg.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    set_seed(cfg.seed)
    if not (Path(cfg.model_dir) / "config.json").is_file():
        raise DataError(f"{cfg.model_dir}: not an encoder folder (no config.json)")
    tok = AutoTokenizer.from_pretrained(cfg.model_dir)
    if tok.mask_token is None:
        raise DataError(f"{cfg.model_dir}: its tokenizer has no mask token; masked-LM pretraining needs one")
    rows, counts = pretraining_rows(cfg.texts, cfg.exclude, cfg.limit)
    windows, message_of = _windows(rows, tok, cfg)
    train_windows, eval_windows = _split_by_message(windows, message_of, cfg.eval_fraction, cfg.seed)
    if not train_windows:
        raise DataError(f"no window of more than 4 pieces to pretrain on in {', '.join(cfg.texts)}")
    eval_ds = Dataset.from_dict({"input_ids": eval_windows})
    train_ds = Dataset.from_dict({"input_ids": train_windows})
    model = BertForMaskedLM.from_pretrained(cfg.model_dir)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=cfg.mlm_probability)  # torch's RNG: seeded
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[data] {counts['kept']} messages ({counts['held_out_ids']} held-out ids and {counts['near_copies']} "
          f"near-copies left out) -> {len(train_ds)} windows to train, {len(eval_ds)} of other messages to measure; "
          f"{total} steps, threads {cfg.threads}{', bf16' if cfg.bf16 else ''}", flush=True)
    scratch = tempfile.TemporaryDirectory(prefix="chuishao-pretrain-")  # the Trainer wants a folder; nothing is saved
    args = TrainingArguments(
        output_dir=scratch.name, per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=64,
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=int(cfg.warmup_ratio * total),
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, lr_scheduler_type="linear", save_strategy="no",
        eval_strategy="no", logging_steps=cfg.log_every, report_to=[], use_cpu=True, seed=cfg.seed,
        data_seed=cfg.seed, disable_tqdm=True, dataloader_num_workers=0, bf16=cfg.bf16)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, data_collator=collator,
                      callbacks=[ProgressCallback(cfg.log_every)])

    def eval_loss() -> float | None:
        if not len(eval_ds):
            return None
        torch.manual_seed(cfg.seed)  # the same masks before and after
        return float(trainer.evaluate()["eval_loss"])

    before = eval_loss()
    t0 = time.time()
    trainer.train()
    train_s = time.time() - t0
    after = eval_loss()
    scratch.cleanup()
    model.bert.save_pretrained(str(out))  # the encoder alone: what fine-tuning and import-encoder folders hold
    tok.save_pretrained(str(out))
    summary = {**counts, "windows": len(windows), "train_windows": len(train_ds), "steps": trainer.state.global_step,
               "eval_loss_before": before, "eval_loss_after": after, "train_seconds": round(train_s, 1),
               "config": asdict(cfg)}
    (out / PRETRAIN_META).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    shown = f"{before:.3f} -> {after:.3f}" if before is not None and after is not None else "n/a"
    print(f"[done] eval messages' masked-LM loss {shown} in {train_s / 60:.1f} min -> {out}", flush=True)
    return summary
