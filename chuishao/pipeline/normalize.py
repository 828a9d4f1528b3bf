"""Normalisation that real hotline and WeChat text needs, applied identically in training and serving."""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

from chuishao.pipeline.privacy import mask_pii

_TAGS = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}>")
_ENTITY_LEFTOVER = re.compile(r"&(?:nbsp|amp|lt|gt|quot|#\d+);?", re.IGNORECASE)
# Control characters, and lone UTF-16 surrogates: a client that cuts an emoji's pair in half sends
# one, and it cannot be encoded (OpenCC, SQLite and the output files would fail on it).
_SURROGATES = r"\ud800-\udfff"
_CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + _SURROGATES
# Emoji, pictographs, variation selectors, zero-width characters.
_EMOJI_CHARS = (
    "\U0001F000-\U0001FAFF\U00002600-\U000027BF\U0001F900-\U0001F9FF\U0000FE00-\U0000FE0F"
    "\U0000200B-\U0000200F\U00002060-\U0000206F\U0000FEFF\U000E0000-\U000E007F"
)
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
_EMOJI = re.compile(f"[{_EMOJI_CHARS}]+")
_WECHAT_EMOTE = re.compile(r"\[(?:[\u4e00-\u9fff]{1,4}|[A-Za-z]{2,10})\]")
# A character that one of the three patterns above starts on: 97 % of messages have none, and one
# search costs less than three substitutions.
_MAYBE_NOISE = re.compile(f"[{_CONTROL_CHARS}{_EMOJI_CHARS}\\[]")
# Han characters: the basic block, extension A, compatibility ideographs, extensions B to H.
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003347f]")
_LETTER = re.compile(r"[^\W\d_]")  # a letter of any script (Han included): not digits, marks or symbols
# Full-width ASCII forms and the ideographic space: NFKC maps each to its ASCII twin. Nearly every
# Chinese message has full-width punctuation, so replacing these first (a few C passes) lets the
# cheap NFKC quick check pass and skips the full normalisation (~10x dearer) for 95 % of messages.
_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")
_HALF_WIDTH = {**{chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}, "\u3000": " "}


def _half_width(text: str) -> str:
    for ch in set(_FULL_WIDTH.findall(text)):  # a message uses a handful of distinct ones
        text = text.replace(ch, _HALF_WIDTH[ch])
    return text


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def normalize_text(text: str, max_chars: int = 2000) -> str:
    """Simplified, half-width, HTML- and emoji-free, PII-masked, whitespace-collapsed text.

    ``max_chars`` bounds the work per message: the topic is stated early, and a
    100,000-character paste must not stall a worker.
    """
    if len(text) > max_chars * 2:
        text = text[: max_chars * 2]
    if "<" in text or "&" in text:
        text = html.unescape(text)
        text = _TAGS.sub(" ", text)
        text = _ENTITY_LEFTOVER.sub(" ", text)
    text = _half_width(text)
    if not unicodedata.is_normalized("NFKC", text):  # the quick check is far cheaper than normalising
        text = unicodedata.normalize("NFKC", text)
    if _MAYBE_NOISE.search(text):  # control characters pass NFKC unchanged, so they can go here too
        text = _CONTROL.sub(" ", text)
        text = _EMOJI.sub(" ", text)
        text = _WECHAT_EMOTE.sub(" ", text)
    text = _t2s().convert(text)
    text = mask_pii(text)
    text = " ".join(text.split()).lower()  # str.split's whitespace is re's \s: same result, 2x faster
    return text[:max_chars]


_SURROGATE = re.compile(f"[{_SURROGATES}]")


def repair_surrogates(text: str) -> str:
    """Lone UTF-16 surrogates (an emoji's pair cut in half by a client) become U+FFFD: they cannot
    be encoded, so a database or file write would fail on them."""
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def han_ratio(text: str) -> float:
    """Share of Chinese characters among the letters: digits, punctuation and symbols do not count,
    so a phone number or a date does not make a Chinese message 'not Chinese'."""
    head = text[:500]  # the head decides; long texts need not be scanned
    letters = len(_LETTER.findall(head))
    return len(_HAN.findall(head)) / letters if letters else 0.0


def without_emoticons(text: str) -> str:
    """The text without WeChat emoticons such as [微笑]: they carry no complaint."""
    return _WECHAT_EMOTE.sub("", text) if "[" in text else text
