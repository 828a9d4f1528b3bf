import pytest

from chuishao.pipeline.normalize import han_ratio, normalize_text
from chuishao.pipeline.privacy import mask_pii
from chuishao.pipeline.segment import Segmenter


def test_traditional_fullwidth_html_emoji_whitespace():
    raw = "<p>樓下燒烤店油煙很大😡😡</p>&nbsp;\n\n  ＡＢＣ１２３，[微笑]晚上還吵"
    out = normalize_text(raw)
    assert "楼下烧烤店油烟很大" in out and "晚上还吵" in out
    assert "abc123" in out  # full-width to half-width, lower-cased
    for leftover in ("<p>", "&nbsp", "😡", "[微笑]", "\n", "  "):
        assert leftover not in out


def test_long_text_is_bounded():
    assert len(normalize_text("违建" * 100_000, max_chars=1500)) == 1500


def test_pii_is_masked_before_anything_else_sees_it():
    text = "我的电话13812345678，座机010-12345678，身份证11010519900307123X，卡号6222021234567890123，邮箱a.b@example.com"
    masked = mask_pii(text)
    for secret in ("13812345678", "010-12345678", "11010519900307123X", "6222021234567890123", "a.b@example.com"):
        assert secret not in masked
    assert masked.count("<PHONE>") == 2 and "<ID>" in masked and "<CARD>" in masked and "<EMAIL>" in masked
    # full-width digits are normalised first, so they are masked too
    assert "13812345678" not in normalize_text("电话：１３８１２３４５６７８")
    # ordinary numbers stay
    assert "3号楼502室" in mask_pii("3号楼502室")


def test_han_ratio():
    assert han_ratio("hello world") == 0.0
    assert han_ratio("小区 物业") == 1.0
    assert han_ratio("小区abc") == 0.4
    assert han_ratio("电话13812345678，2024年12月1日") == 1.0  # digits and punctuation do not count
    assert han_ratio("𠮷野家门口") == 1.0  # extension B
    assert han_ratio("12345 !!!") == 0.0


def test_domain_words_stay_whole_with_both_engines():
    text = "小区门口占道经营，物业不管，楼上还有群租，有人开墙打洞"
    for engine in ("jieba", "rjieba"):
        words = Segmenter(engine=engine).cut(text)
        for w in ("小区", "占道经营", "物业", "群租", "开墙打洞"):
            assert w in words, (engine, words)
        assert "，" not in words


def test_engines_agree(mini_data):
    # rjieba is a port of jieba; the model must not depend on which one is installed
    fast, ref = Segmenter(engine="rjieba"), Segmenter(engine="jieba")
    for title, text in zip(mini_data.titles, mini_data.texts, strict=True):
        doc = normalize_text(f"{title}。{text}")
        assert fast.cut(doc) == ref.cut(doc)


def test_segmenter_state_is_its_lexicon_not_its_engine():
    import json

    seg = Segmenter(engine="jieba")
    seg.cut("小区")
    state = json.loads(json.dumps(seg.to_state()))  # JSON-ready: engine name and lexicon only
    assert set(state) == {"engine", "lexicon"} and state["engine"] == "jieba"
    clone = Segmenter.from_state(state)
    assert clone.lexicon == seg.lexicon
    assert clone.cut("群租房") == seg.cut("群租房")


@pytest.mark.parametrize("number", ["138.1234.5678", "138—1234—5678", "+86 138 1234 5678", "01087654321", "(010)87654321",
                                    "010 87654321", "110101 19900307 123X", "110101900307123"])
def test_personal_numbers_written_with_separators_are_masked(number):
    masked = mask_pii(f"联系人{number}，请回电")
    assert masked.startswith("联系人<") and masked.endswith(">，请回电"), masked


def test_numbers_that_are_not_personal_stay():
    for text in ("3号楼502室", "2024年12月1日", "面积120平方米", "订单号20241201", "1号线到3号楼走500米"):
        assert mask_pii(text) == text


def test_logs_mask_percent_encoded_and_full_width_numbers():
    from chuishao.serve.logs import mask_for_log

    assert mask_for_log("GET /v1/taxonomy?phone=%31%33%38%31%32%33%34%35%36%37%38 200") == "GET /v1/taxonomy?phone=<PHONE> 200"
    assert mask_for_log("?p=138%201234%205678") == "?p=<PHONE>"
    assert mask_for_log("电话１３８１２３４５６７８") == "电话<PHONE>"
