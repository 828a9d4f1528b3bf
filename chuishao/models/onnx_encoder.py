"""The fine-tuned encoder at inference: onnxruntime + tokenizers only (no torch, no transformers).

An ONNX folder (written by ``chuishao transformer export-onnx``) holds model.onnx (and model.int8.onnx),
tokenizer.json and chuishao_transformer.json (labels, temperature, input format, max_length). This module
sits in ``models`` so that a cascade model (``models.cascade``) serves it without the training code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from chuishao.errors import ModelLoadError

META_FILE = "chuishao_transformer.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TitleMode = Literal["prefix", "repeat", "none"]


def format_text(rec: dict[str, Any], title_mode: TitleMode = "prefix", prefix: str = "query: ") -> str:
    """The model's input text: e5 prefix, then the title (once, twice or not at all) and the text, joined by '。'."""
    title = str(rec.get("title") or "").strip()
    text = str(rec.get("text") or "").strip()
    parts = {"prefix": [title], "repeat": [title, title], "none": []}[title_mode]
    return prefix + "。".join(p for p in [*parts, text] if p)


def _load(directory: str, int8: bool, threads: int) -> OnnxClassifier:
    return OnnxClassifier.load(directory, int8=int8, threads=threads)


@dataclass
class OnnxClassifier:
    """onnxruntime session + tokenizer + metadata; predicts calibrated probabilities without torch."""

    session: Any
    tokenizer: Any
    meta: dict[str, Any]
    directory: str = ""
    int8: bool = False
    threads: int = 1

    @classmethod
    def load(cls, onnx_dir: str | Path, *, int8: bool = False, threads: int = 1) -> OnnxClassifier:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelLoadError(f"{onnx_dir}: a transformer model needs {exc.name}: pip install '.[transformer]' "
                                 f"in the chuishao checkout") from None

        d = Path(onnx_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(d / (INT8_FILE if int8 else ONNX_FILE)), opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        tok.enable_truncation(int(meta["max_length"]))
        tok.no_padding()  # batches are padded here, after sorting by length
        return cls(sess, tok, meta, str(d), int8, threads)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # an onnxruntime session does not pickle: a copy (process pool, Spark) opens the same files again
        return _load, (self.directory, self.int8, self.threads)

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    def logits_texts(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Logits for already formatted input texts (prefix included). Batches hold texts of similar
        length (sorted by piece count), so little time goes on padding; rows come back in input order.
        The int8 model runs one text at a time: its dynamic quantisation scales each batch's activations by
        the batch's own range, so a text's answer would depend on the texts batched with it (up to 0.26 in
        probability, 3 % of top topics on whistle test) and a service's single message would not get
        the answer the dev split was fitted on."""
        if self.int8:
            batch_size = 1
        n = len(texts)
        out = np.zeros((n, len(self.labels)), dtype=np.float32)
        if n == 0:
            return out
        enc = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in enc])
        order = np.argsort(lengths, kind="stable")
        pad_id = self.tokenizer.token_to_id("<pad>")
        pad = 1 if pad_id is None else int(pad_id)  # masked out: any id would do
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for k, r in enumerate(rows.tolist()):
                ids[k, :lengths[r]] = enc[r].ids
                mask[k, :lengths[r]] = 1
            out[rows] = self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
        return out

    def texts_of(self, records: Sequence[dict[str, Any]]) -> list[str]:
        return [format_text(r, self.meta["title_mode"], self.meta["prefix"]) for r in records]

    def logits(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> np.ndarray:
        """Logits for records with title/text, formatted as in training."""
        return self.logits_texts(self.texts_of(records), batch_size)

    def proba_of_logits(self, z: np.ndarray) -> np.ndarray:
        z = z / float(self.meta.get("temperature", 1.0))
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_proba(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> np.ndarray:
        """Temperature-scaled softmax probabilities [n, labels] (label order: ``self.labels``)."""
        return self.proba_of_logits(self.logits(records, batch_size))

    def predict(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(records, batch_size).argmax(1)]


@dataclass
class EncoderEnsemble:
    """Several fine-tuned encoders (e.g. one recipe, several seeds) answering as one: the mean of their
    temperature-scaled probabilities, in the first member's label order. Fine-tunes of a few thousand rows
    swing with the seed, rare topics most; their mean swings less."""

    members: list[OnnxClassifier]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an encoder ensemble needs at least one encoder")
        first = set(self.members[0].labels)
        for m in self.members[1:]:
            if set(m.labels) != first:
                raise ValueError(f"{m.directory}: labels {sorted(m.labels)} differ from the first encoder's "
                                 f"{sorted(first)}")
        # each member's columns in the first member's order
        self._columns = [np.array([m.labels.index(c) for c in self.labels]) for m in self.members]

    @property
    def labels(self) -> list[str]:
        return self.members[0].labels

    def predict_proba(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> np.ndarray:
        """The members' mean probabilities [n, labels] (label order: ``self.labels``)."""
        total = np.zeros((len(records), len(self.labels)), dtype=np.float64)
        for m, cols in zip(self.members, self._columns, strict=True):
            total += m.predict_proba(records, batch_size)[:, cols]
        return total / len(self.members)

    def predict(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(records, batch_size).argmax(1)]


def load_encoders(directories: Sequence[str | Path], *, int8: bool = False,
                  threads: int = 1) -> OnnxClassifier | EncoderEnsemble:
    """One ONNX folder as an OnnxClassifier, several as their EncoderEnsemble."""
    members = [OnnxClassifier.load(d, int8=int8, threads=threads) for d in directories]
    return members[0] if len(members) == 1 else EncoderEnsemble(members)
