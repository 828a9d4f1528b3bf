"""Export a fine-tuned MeanPoolClassifier to ONNX; predict with onnxruntime alone (``chuishao.models.onnx_encoder``).

The exported graph takes input_ids and attention_mask (int64, [batch, sequence], both axes dynamic) and returns
logits [batch, labels]. The folder gets model.onnx (and model.int8.onnx with dynamic int8 quantisation), the
tokenizer files and chuishao_transformer.json copied from the fine-tuned folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chuishao.errors import ModelLoadError
from chuishao.models.onnx_encoder import META_FILE, OnnxClassifier

__all__ = ["META_FILE", "OnnxClassifier", "compare_with_torch", "export_onnx", "quantize_int8", "require_finetuned"]
_COPY = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", META_FILE, "config.json")


TRAINER_STATE = "trainer_state.json"  # what the Trainer writes in each checkpoint-N folder


def require_finetuned(model_dir: str | Path) -> None:
    """A ModelLoadError unless ``model_dir`` is a fine-tuned model: ``finetune``'s output (with its META_FILE: labels,
    temperature, input format) or one of its Trainer checkpoints. An imported or pretrained encoder has neither: its
    head would be random and its labels LABEL_0, LABEL_1."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelLoadError(f"{d}: no such folder (a fine-tuned model: chuishao transformer finetune's output)")
    if (d / META_FILE).is_file():
        return
    if (d / TRAINER_STATE).is_file() and (d / "config.json").is_file():
        try:
            config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        id2label = config.get("id2label") if isinstance(config, dict) else None
        if isinstance(id2label, dict) and not all(str(v).startswith("LABEL_") for v in id2label.values()):
            return  # a checkpoint of a fine-tuning: its labels are in its config
    raise ModelLoadError(f"{d}: not a fine-tuned model (no {META_FILE}); fine-tune it first: chuishao transformer "
                         f"finetune {d} TRAIN.jsonl OUT, then export OUT")


def export_onnx(model_dir: str | Path, out_dir: str | Path, *, opset: int = 17, quantize: bool = False) -> Path:
    """Write ``out_dir/model.onnx`` (and ``model.int8.onnx`` when ``quantize``); the path of model.onnx. A folder that
    was never fine-tuned is refused (``require_finetuned``) before anything is written."""
    import torch

    from chuishao.transformer.finetune import MeanPoolClassifier

    model_dir, out = Path(model_dir), Path(out_dir)
    require_finetuned(model_dir)
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
