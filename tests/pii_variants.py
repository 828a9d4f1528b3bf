"""Personal data as people really write it, for the property test and the service check.

Each variant is (needle, written): the needle is what must never come out (a number's digits, an
e-mail address), the written form is how a message carries it: separators between digit groups
(spaces, hyphens of every width, dots, zero-width characters), area codes in parentheses, +86,
full-width and mathematical digits, a full-width ＠.
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import strategies as st

# separators people put inside numbers, the invisible ones included
SEPARATORS = (" ", "-", ".", "\u3000", "\uff0d", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", "\ufe63",
              "\u00b7", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", " - ", "\u200b\u200b", "\t")
# digit alphabets: ASCII, full-width, and the mathematical ones (bold, double-struck, sans, mono)
DIGITS = tuple(tuple(chr(base + i) for i in range(10))
               for base in (0x30, 0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6))
AREA_CODES = ("010", "021", "022", "023", "0571", "0755", "0898", "0431")
MOBILE_PREFIXES = ("", "+86", "+86 ", "0086 ", "86-", "(+86)", "（+86）", "+８６ ")
CONTEXT = (("联系电话", "，请尽快处理"), ("我的", "。"), ("", ""), ("卡号：", "，谢谢"), ("身份证号", "请核实"),
           ("电话:", " 2024年6月1日"), ("3号楼502室，", "，王先生"))


def _groups(draw: st.DrawFn, digits: str, sizes: list[int] | None = None, min_size: int = 3) -> list[str]:
    """Cut ``digits`` into groups (given sizes, or random ones of ``min_size`` digits or more)."""
    if sizes is None:
        sizes, left = [], len(digits)
        while left:
            size = draw(st.integers(min_size, left))
            if 0 < left - size < min_size:
                size = left
            sizes.append(size)
            left -= size
    out, at = [], 0
    for size in sizes:
        out.append(digits[at:at + size])
        at += size
    return out


def _write(draw: st.DrawFn, groups: list[str]) -> str:
    alphabet = draw(st.sampled_from(DIGITS))
    glued = draw(st.booleans())  # no separator at all, half the time
    seps = [draw(st.sampled_from(SEPARATORS)) for _ in groups[1:]]
    out = groups[0]
    for sep, group in zip(seps, groups[1:], strict=True):
        out += ("" if glued else sep) + group
    return "".join(alphabet[int(c)] if c.isdigit() else c for c in out)


@st.composite
def mobiles(draw: st.DrawFn) -> tuple[str, str]:
    digits = "1" + draw(st.sampled_from("3456789")) + "".join(draw(st.lists(st.sampled_from("0123456789"),
                                                                                min_size=9, max_size=9)))
    layout = draw(st.sampled_from([[3, 4, 4], [3, 8], [7, 4], [4, 3, 4], [11], None]))
    return digits, draw(st.sampled_from(MOBILE_PREFIXES)) + _write(draw, _groups(draw, digits, layout))


@st.composite
def landlines(draw: st.DrawFn) -> tuple[str, str]:
    area = draw(st.sampled_from(AREA_CODES))
    n = draw(st.sampled_from([7, 8]))
    local = draw(st.sampled_from("23456789")) + "".join(draw(st.lists(st.sampled_from("0123456789"),
                                                                      min_size=n - 1, max_size=n - 1)))
    local_written = _write(draw, _groups(draw, local, draw(st.sampled_from([[n], [n - 4, 4]]))))
    style = draw(st.sampled_from(["plain", "paren", "+86"]))
    if style == "paren":
        written = draw(st.sampled_from(["(", "（"])) + _write(draw, [area]) + draw(st.sampled_from([")", "）"]))
        written += draw(st.sampled_from(["", " "])) + local_written
    elif style == "+86":
        written = "+86 " + _write(draw, [area[1:]]) + draw(st.sampled_from(SEPARATORS)) + local_written
    else:
        written = _write(draw, [area]) + draw(st.sampled_from(SEPARATORS)) + local_written
    return local, written  # the local number is the secret; the area code alone is not


@st.composite
def id_cards(draw: st.DrawFn) -> tuple[str, str]:
    region = draw(st.sampled_from(["110101", "310104", "440305", "510107", "652901"]))
    year = draw(st.integers(1930, 2020))
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    serial = f"{draw(st.integers(0, 999)):03d}" + draw(st.sampled_from("0123456789Xx"))
    digits = f"{region}{year}{month:02d}{day:02d}{serial}"
    layout = draw(st.sampled_from([[6, 8, 4], [6, 4, 4, 4], [18], [3, 3, 4, 4, 4], None]))
    return digits.upper().rstrip("X"), _write(draw, _groups(draw, digits, layout))


@st.composite
def bank_cards(draw: st.DrawFn) -> tuple[str, str]:
    n = draw(st.integers(16, 19))
    digits = draw(st.sampled_from(["6222", "6217", "6228", "4367", "6013", "5187"])) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=n - 4, max_size=n - 4)))
    fours = [4] * (n // 4) + ([n % 4] if n % 4 else [])
    layout = draw(st.sampled_from([fours, [n], [6, n - 6]]))
    return digits, _write(draw, _groups(draw, digits, layout))


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str]:
    user = draw(st.from_regex(r"[a-z][a-z0-9._]{2,12}[a-z0-9]", fullmatch=True))
    host = draw(st.sampled_from(["163.com", "qq.com", "example.com.cn", "mail.sina.com", "gmail.com"]))
    at = draw(st.sampled_from(["@", "\uff20", "\ufe6b"]))
    return f"{user}@{host}", f"{user}{at}{host}"


def needles() -> st.SearchStrategy[tuple[str, str]]:
    return st.one_of(mobiles(), landlines(), id_cards(), bank_cards(), emails())


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, str]:
    """(needle, message): a needle written somewhere in a complaint."""
    needle, written = draw(needles())
    before, after = draw(st.sampled_from(CONTEXT))
    return needle, f"楼下烧烤店油烟扰民，{before}{written}{after}"


# digits and what people put between them (as chuishao/pipeline/privacy.py sees them, after NFKC)
_NUMBER_RUN = re.compile("[0-9Xx](?:[\\s\\-.\u00b7\u2010-\u2015\u2212\u200b-\u200d\u2060\ufeff()]*[0-9Xx])*")


def survives(needle: str, output: str) -> bool:
    """Whether a needle comes out: an e-mail address as written, a number as its digits in one run
    of digits and separators (so digits that merely follow each other in unrelated text do not count)."""
    plain = unicodedata.normalize("NFKC", output)
    if "@" in needle:
        return needle.lower() in plain.lower().replace("\u200b", "")
    return any(needle.upper() in re.sub("[^0-9Xx]", "", run).upper() for run in _NUMBER_RUN.findall(plain))
