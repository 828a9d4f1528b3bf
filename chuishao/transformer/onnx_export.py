"""Export a fine-tuned MeanPoolClassifier to ONNX and predict with onnxruntime alone (no torch at inference).

The exported graph takes input_ids and attention_mask (int64, [batch, sequence], both axes dynamic) and returns
logits [batch, labels]. The folder gets model.onnx (and model.int8.onnx with dynamic int8 quantisation), the
tokenizer files and chuishao_transformer.json copied from the fine-tuned folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

META_FILE = "chuishao_transformer.json"
_COPY = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", META_FILE, "config.json")


def export_onnx(model_dir: str | Path, out_dir: str | Path, *, opset: int = 17, quantize: bool = False) -> Path:
    """Write ``out_dir/model.onnx`` (and ``model.int8.onnx`` when ``quantize``); the path of model.onnx."""
    import torch

    from chuishao.transformer.finetune import MeanPoolClassifier

    model_dir, out = Path(model_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = MeanPoolClassifier.from_pretrained(str(model_dir)).eval()

    class _Logits(torch.nn.Module):
        def __init__(self, inner: MeanPoolClassifier) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    # the second row is padded: the trace then keeps the attention-mask path (an all-ones mask may be skipped)
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]], dtype=torch.long)
    mask = (ids != model.config.pad_token_id).long()
    path = out / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            _Logits(model), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["logits"], opset_version=opset, do_constant_folding=True, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "logits": {0: "batch"}})
    for name in _COPY:
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out / name)
    if not (out / META_FILE).exists():  # a bare Trainer checkpoint: labels from its config, temperature 1
        from chuishao.transformer.finetune import load_classifier

        meta = load_classifier(model_dir)[2]
        (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2))
    if quantize:
        quantize_int8(path, out / "model.int8.onnx")
    return path


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of the MatMul/Gemm weights (onnxruntime.quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    return Path(dst)


@dataclass
class OnnxClassifier:
    """onnxruntime session + tokenizer + metadata; predicts calibrated probabilities without torch."""

    session: Any
    tokenizer: Any
    meta: dict[str, Any]

    @classmethod
    def load(cls, onnx_dir: str | Path, *, int8: bool = False, threads: int = 1) -> OnnxClassifier:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        d = Path(onnx_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(d / ("model.int8.onnx" if int8 else "model.onnx")), opts,
                                    providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        meta = json.loads((d / META_FILE).read_text())
        pad_id = tok.token_to_id("<pad>")
        tok.enable_truncation(int(meta["max_length"]))
        tok.enable_padding(pad_id=pad_id, pad_token="<pad>")
        return cls(sess, tok, meta)

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    def logits_texts(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Logits for already formatted input texts (prefix included)."""
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer.encode_batch(list(texts[i:i + batch_size]))
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            out.append(self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0])
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def logits(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> np.ndarray:
        """Logits for records with title/text, formatted as in training."""
        from chuishao.transformer.data import format_text

        texts = [format_text(r, self.meta["title_mode"], self.meta["prefix"]) for r in records]
        return self.logits_texts(texts, batch_size)

    def predict_proba(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> np.ndarray:
        """Temperature-scaled softmax probabilities [n, labels] (label order: ``self.labels``)."""
        z = self.logits(records, batch_size) / float(self.meta.get("temperature", 1.0))
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, records: Sequence[dict[str, Any]], batch_size: int = 32) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(records, batch_size).argmax(1)]


def compare_with_torch(model_dir: str | Path, onnx_dir: str | Path, records: Sequence[dict[str, Any]],
                       int8: bool = False) -> dict[str, float]:
    """Max |logit difference| ONNX vs torch on records, and argmax agreement."""
    from chuishao.transformer.finetune import load_classifier, predict_logits

    model, tok, meta = load_classifier(model_dir)
    ref = predict_logits(model, tok, meta, list(records))
    got = OnnxClassifier.load(onnx_dir, int8=int8).logits(records)
    # padding differs per batch between the two paths only in length; masked mean pooling makes it irrelevant
    return {"max_abs_diff": float(np.abs(ref - got).max()), "argmax_agree": float((ref.argmax(1) == got.argmax(1)).mean()),
            "rows": float(len(records))}
