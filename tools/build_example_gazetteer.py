"""Build data/gazetteer/example.yaml from the place names in ../shared/data/corpus.jsonl.

Place names only (no text leaves the corpus): the Teddy data's anonymised cities (A市, its A1区 ...
A9市, and the streets/townships and communities/villages written right after them, e.g.
"A7县泉塘街道"), and Hangzhou's real districts with the streets named after them in the `hangzhou`
source. A street/township is kept when written right after its district, a community/village when
written right after its street.

    python tools/build_example_gazetteer.py [../shared/data/corpus.jsonl] \
        --exclude data/labels/places-300-ids.txt > data/gazetteer/example.yaml

The messages of the place benchmark (bench/bench_places.py) are left out with --exclude, so that the
benchmark measures names the gazetteer was not built from: both its development set and its held-out test set
(the extractor's rules are tuned on the first; the second is scored once, and a gazetteer built from its own
messages would know every unit they name):

    python tools/build_example_gazetteer.py --exclude data/labels/places-300-ids.txt \
        --exclude data/labels/places-test-150-ids.txt > data/gazetteer/example.yaml

A name is the run of words before the level word that chuishao/pipeline/unitnames.py accepts, the rule the
extractor applies to units in no list: "全体村民", "下属村", "地方镇府" give none, "现老里村" gives 老里村, and a
village-community ("青山新村社区") is taken whole.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from chuishao.pipeline.unitnames import generic_compound, name_start, opens_with_generic_word

HANGZHOU = ("上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区", "富阳区", "临安区",
            "桐庐县", "淳安县", "建德市")
# short forms residents write for a district; left out where they name something else too (西湖, 滨江, 钱塘江)
HANGZHOU_ALIASES = {"萧山区": ["萧山"], "余杭区": ["余杭"], "临平区": ["临平"], "富阳区": ["富阳"], "临安区": ["临安"],
                    "拱墅区": ["拱墅"], "桐庐县": ["桐庐"], "淳安县": ["淳安"]}
# streets the hangzhou source names without their district (their district from the city's own list)
HANGZHOU_STREETS = {
    "萧山区": ["蜀山街道", "宁围街道", "北干街道", "城厢街道", "新塘街道", "瓜沥镇", "临浦镇", "义桥镇", "新街街道", "南阳街道"],
    "临平区": ["乔司街道", "南苑街道", "崇贤街道", "塘栖镇", "东湖街道"],
    "滨江区": ["长河街道", "西兴街道"], "余杭区": ["闲林街道", "余杭街道", "仓前街道", "良渚街道"],
    "富阳区": ["银湖街道"], "钱塘区": ["新湾街道", "临江街道"], "临安区": ["锦北街道"],
    "上城区": ["笕桥街道", "九堡街道", "丁兰街道", "采荷街道", "紫阳街道", "潮鸣街道"],
    "拱墅区": ["石桥街道", "米市巷街道", "拱宸桥街道", "康桥街道"], "西湖区": ["转塘街道", "三墩镇", "留下街道"],
}
JUNK = set("的了在我是们这那个有和与及对被将把从到向给等都也就所为其该本每各某从于请问您你他她它啊吗呢吧区县市省")
STREET = re.compile(r"([\u4e00-\u9fa5]{2,4}?)(街道|镇|乡)(?![长区镇])")
MIN_STREET = 1  # written right after its district ("A7县泉塘街道"): once is enough
COMMUNITY = re.compile(r"([\u4e00-\u9fa5]{2,5}?)(村社区|村居委会|社区|村)(?!小区|[路站民委])")


# not places: 父老乡亲, 城乡, 小城镇, 老乡, 行政村, 一部分村, 办事处XX村 ...
DENY = {"父老", "一", "小城", "美丽", "相思", "城城", "选调"}
JUNK |= set("很部办处局第效原籍政行农")


def clean(name: str) -> bool:
    return not (set(name) & JUNK) and not name.endswith(("城", "小", "老")) and name not in DENY


def unit(text: str, m: re.Match[str] | None, longest: int) -> str | None:
    """The unit a STREET or COMMUNITY match names (name and level word), or None: the name is the part the
    shared rule (chuishao/pipeline/unitnames.py) accepts, so a leading scope word is dropped ("现老里村")."""
    if m is None:
        return None
    word_at = m.start(2)
    start = name_start(text, word_at, m.start(), longest)
    if start is None or generic_compound(text, word_at, m.group(2)) or opens_with_generic_word(text[start:word_at]):
        return None
    name = text[start:word_at]
    return name + m.group(2) if clean(name) else None


def office(level: str, name: str) -> str:
    if level == "district":
        return name + "人民政府"
    if level == "street":
        return name + ("办事处" if name.endswith("街道") else "人民政府")
    return name + ("居民委员会" if name.endswith(("社区", "新村")) else "民委员会")


def build(rows: list[dict]) -> dict:
    district_suffix: dict[str, Counter] = defaultdict(Counter)  # A7 -> Counter(县: n)
    streets: dict[str, Counter] = defaultdict(Counter)  # district key -> street -> n
    communities: dict[tuple[str, str], Counter] = defaultdict(Counter)
    texts = [(r.get("title") or "") + "。" + (r.get("text") or "") for r in rows]
    teddy = re.compile(r"([A-M]\d{1,2})([区县市])")
    for text in texts:
        for m in teddy.finditer(text):
            code = m.group(1)
            district_suffix[code][m.group(2)] += 1
            s = STREET.match(text, m.end())
            street = unit(text, s, 4)
            if s and street:
                streets[code][street] += 1
                c = COMMUNITY.match(text, s.end())
                community = unit(text, c, 5)
                if community:
                    communities[(code, street)][community] += 1
    # communities after a street written without its district ("泉塘街道泉星社区"), when one district has that street
    owner: dict[str, list[str]] = defaultdict(list)
    for code, counts in streets.items():
        for street in counts:
            if clean(street[:-2] if street.endswith("街道") else street[:-1]):
                owner[street].append(code)
    street_re = re.compile("|".join(sorted((re.escape(s) for s, o in owner.items() if len(o) == 1), key=len, reverse=True)))
    for text in texts:
        for m in street_re.finditer(text):
            community = unit(text, COMMUNITY.match(text, m.end()), 5)
            if community:
                communities[(owner[m.group(0)][0], m.group(0))][community] += 1
    hz = {d: Counter() for d in HANGZHOU}
    hz_comm: dict[tuple[str, str], Counter] = defaultdict(Counter)
    hz_re = re.compile("|".join(HANGZHOU))
    for r, text in zip(rows, texts, strict=True):
        if r["source"] != "hangzhou":
            continue
        for m in hz_re.finditer(text):
            street = unit(text, STREET.match(text, m.end()), 4)
            if street:
                hz[m.group(0)][street] += 1
        for district, names in HANGZHOU_STREETS.items():
            for street in names:
                at = text.find(street)
                if at >= 0:
                    hz[district][street] += 2
                    community = unit(text, COMMUNITY.match(text, at + len(street)), 5)
                    if community:
                        hz_comm[(district, street)][community] += 1

    def street_list(counts: Counter, comms: dict[str, Counter]) -> list[dict]:
        # the same place written as 镇 and as 街道 (a township made a street): one street, the other an alias
        by_base: dict[str, list[str]] = defaultdict(list)
        for name, n in counts.most_common():
            if n >= MIN_STREET:
                by_base[re.sub("(街道|镇|乡)$", "", name)].append(name)
        out = []
        for names in by_base.values():
            name, aliases = names[0], names[1:]
            entry: dict = {"name": name}
            if aliases:
                entry["aliases"] = aliases
            entry["office"] = office("street", name)
            kids = Counter()
            for n in names:
                kids.update(comms.get(n, Counter()))
            if kids:
                entry["communities"] = [{"name": c, "office": office("community", c)} for c in sorted(kids)]
            out.append(entry)
        return sorted(out, key=lambda e: e["name"])

    cities = []
    for letter in "ABCDEFGHIJKLM":
        districts = []
        codes = sorted((c for c in district_suffix if c[0] == letter), key=lambda c: int(c[1:]))
        for code in codes:
            suffixes = district_suffix[code].most_common()
            if sum(n for _, n in suffixes) < 2:
                continue
            name = code + suffixes[0][0]
            entry: dict = {"name": name}
            others = [code + s for s, n in suffixes[1:] if n >= 2]
            if others:
                entry["aliases"] = others
            entry["office"] = office("district", name)
            comms = {s: communities[(code, s)] for s in streets[code]}
            kids = street_list(streets[code], comms)
            if kids:
                entry["streets"] = kids
            districts.append(entry)
        if districts:
            cities.append({"name": letter + "市", "office": letter + "市人民政府", "districts": districts})
    hz_districts = []
    for d in HANGZHOU:
        entry = {"name": d}
        if d in HANGZHOU_ALIASES:
            entry["aliases"] = HANGZHOU_ALIASES[d]
        entry["office"] = office("district", d)
        kids = street_list(hz[d], {s: hz_comm[(d, s)] for s in hz[d]})
        if kids:
            entry["streets"] = kids
        hz_districts.append(entry)
    cities.append({"name": "杭州市", "aliases": ["杭州"], "office": "杭州市人民政府", "province": "浙江省",
                   "province_aliases": ["浙江"], "districts": hz_districts})
    return drop_shared_aliases({"name": "example", "version": "2026-12", "cities": cities})


def drop_shared_aliases(gazetteer: dict) -> dict:
    """An alias must stand for one place: drop those that another place has as name or alias."""
    places = [p for c in gazetteer["cities"] for d in c["districts"]
              for p in (c, d, *d.get("streets", []), *(k for s in d.get("streets", []) for k in s.get("communities", [])))]
    seen = Counter(n for p in {id(p): p for p in places}.values() for n in {p["name"], *p.get("aliases", [])})
    for p in {id(p): p for p in places}.values():
        if "aliases" in p:
            p["aliases"] = [a for a in p["aliases"] if seen[a] == 1]
            if not p["aliases"]:
                del p["aliases"]
    return gazetteer


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the example gazetteer from the corpus's place names.")
    parser.add_argument("corpus", type=Path, nargs="?", default=Path("../shared/data/corpus.jsonl"))
    parser.add_argument("--exclude", type=Path, action="append", default=[],
                        help="a file of message ids (one a line) whose names are left out: the place benchmark's test set")
    args = parser.parse_args()
    excluded = {line.strip() for path in args.exclude for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    rows = [row for line in args.corpus.open(encoding="utf-8") if (row := json.loads(line))["id"] not in excluded]
    print("# Example gazetteer, built by tools/build_example_gazetteer.py from the place names in the corpus")
    print("# (the Teddy data's anonymised cities A市 ... M市, and Hangzhou). Names only; offices are the usual titles.")
    print("# A city writes its own in this format: see docs/places.md."
          + (f" Built without {len(excluded)} excluded messages (the place benchmark's)." if excluded else ""))
    print(yaml.safe_dump(build(rows), allow_unicode=True, sort_keys=False, width=120), end="")


if __name__ == "__main__":
    main()
