"""The operator page in a real headless Chromium (Playwright driving the system browser).

Needs `pip install playwright` and a Chromium binary (Debian: `apt-get install chromium`);
Playwright's own browser download is not used. Skipped with the reason when either is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = os.environ.get("CHUISHAO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium binary (apt-get install chromium, or set CHUISHAO_CHROMIUM)", allow_module_level=True)

from conftest import SERVE_KEY, served

from chuishao.serve.app import create_app
from chuishao.serve.feedback_store import FeedbackStore

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
TEXT = "楼下烧烤店油烟直接排到居民楼，窗户都不敢开，油烟味很重。"


@pytest.fixture()
def live_server(serve_settings):
    with served(create_app(serve_settings)) as url:
        yield url


@pytest.fixture()
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_operator_classifies_confirms_and_corrects(live_server, page, serve_settings):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server + "/")
    sync_api.expect(page.get_by_test_id("version")).to_have_text("模型 tiny-test")

    page.fill("#title", "烧烤店油烟")
    page.fill("#text", TEXT)
    page.fill("#msgid", "rx-browser-1")
    page.get_by_test_id("classify").click()

    sync_api.expect(page.get_by_test_id("topic")).to_contain_text("W06")
    bars = page.locator("[data-testid=bars] .bar")
    sync_api.expect(bars).to_have_count(3)
    widths = [float(bars.nth(i).locator(".fill").evaluate("e => parseFloat(e.style.width)")) for i in range(3)]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    sync_api.expect(page.get_by_test_id("lead")).to_have_text("生态环境局")
    sync_api.expect(page.get_by_test_id("place")).to_have_text("未识别到地点")  # the text names no place
    marks = page.locator("[data-testid=highlighted] mark").all_inner_texts()
    assert marks and all(m in TEXT for m in marks)  # evidence words marked in the typed text

    # confirm without a key: refused, and the page says so
    page.get_by_test_id("confirm").click()
    sync_api.expect(page.get_by_test_id("status")).to_contain_text("反馈未保存")

    page.fill("#apikey", SERVE_KEY)
    page.get_by_test_id("confirm").click()
    sync_api.expect(page.get_by_test_id("status")).to_contain_text("已保存反馈")

    page.select_option("[data-testid=fix-topic]", "W05")
    sync_api.expect(page.get_by_test_id("fix-lead")).to_have_value("城管执法局")  # filled from the taxonomy
    page.select_option("[data-testid=fix-sub]", "W05b")
    page.fill("[data-testid=fix-assist]", "生态环境局，公安分局")
    page.get_by_test_id("correct").click()
    sync_api.expect(page.get_by_test_id("status")).to_contain_text("W05")
    assert errors == []

    store = FeedbackStore(serve_settings.db_url)
    rows = sorted(store.latest_per_message(), key=lambda r: r.pk)
    assert store.count() == 2 and len(rows) == 1  # confirmation, then a correction of the same message
    last = rows[0]
    assert (last.message_id, last.topic, last.sub, last.predicted_topic) == ("rx-browser-1", "W05", "W05b", "W06")
    assert last.lead == "城管执法局" and last.assist == ["生态环境局", "公安分局"] and last.text == TEXT
    store.close()


def test_page_shows_why_a_text_cannot_be_classified(live_server, page):
    """In Chinese next to the form (visible without scrolling), the service's own words in small print."""
    page.goto(live_server + "/")
    page.fill("#text", "only latin text")
    page.get_by_test_id("classify").click()
    message = page.get_by_test_id("classify-msg")
    sync_api.expect(message).to_contain_text("内容不是中文")
    sync_api.expect(message.locator(".raw")).to_contain_text("not Chinese")
    sync_api.expect(message).to_be_in_viewport(ratio=1)


def test_a_failed_classification_takes_the_previous_answer_away(live_server, page, serve_settings):
    """The old answer must not stay on screen, nor be confirmed as the new text's topic."""
    page.goto(live_server + "/")
    page.fill("#apikey", SERVE_KEY)
    page.fill("#text", TEXT)
    page.get_by_test_id("classify").click()
    sync_api.expect(page.get_by_test_id("topic")).to_contain_text("W06")
    sync_api.expect(page.get_by_test_id("confirm")).to_be_enabled()

    page.fill("#text", "only latin text")
    page.get_by_test_id("classify").click()
    sync_api.expect(page.locator("#result")).to_be_hidden()
    sync_api.expect(page.get_by_test_id("confirm")).to_be_disabled()
    sync_api.expect(page.get_by_test_id("correct")).to_be_disabled()
    sync_api.expect(page.get_by_test_id("classify-msg")).to_contain_text("无法分类")
    sync_api.expect(page.get_by_test_id("classify-msg")).to_be_in_viewport(ratio=1)
    page.get_by_test_id("confirm").dispatch_event("click")  # even a scripted click stores nothing
    page.get_by_test_id("correct").dispatch_event("click")
    page.wait_for_timeout(300)

    second = "每天晚上广场舞音响声音特别大，严重扰民。"
    page.fill("#text", second)
    page.get_by_test_id("classify").click()
    sync_api.expect(page.get_by_test_id("confirm")).to_be_enabled()
    page.get_by_test_id("confirm").click()
    sync_api.expect(page.get_by_test_id("status")).to_contain_text("已保存反馈")
    store = FeedbackStore(serve_settings.db_url)
    rows = list(store.latest_per_message())
    store.close()
    assert [r.text for r in rows] == [second]


def test_an_over_long_text_is_refused_with_the_reason_not_cut(live_server, page):
    page.goto(live_server + "/")
    page.fill("#text", "噪" * 30_000)
    assert page.locator("#text").evaluate("e => e.value.length") == 30_000  # nothing cut silently
    sync_api.expect(page.get_by_test_id("counter")).to_contain_text("超过上限")
    page.get_by_test_id("classify").click()
    message = page.get_by_test_id("classify-msg")
    sync_api.expect(message).to_contain_text("过长：30000 字，上限 20000 字")
    sync_api.expect(message.locator(".raw")).to_contain_text("text too long")
    sync_api.expect(page.locator("#result")).to_be_hidden()


def test_a_title_alone_is_classified_and_nothing_at_all_is_explained(live_server, page):
    page.goto(live_server + "/")
    page.fill("#title", "烧烤店油烟扰民")
    page.get_by_test_id("classify").click()
    sync_api.expect(page.get_by_test_id("topic")).to_contain_text("W06")

    page.fill("#title", "")
    page.fill("#text", "  ")
    page.get_by_test_id("classify").click()
    sync_api.expect(page.get_by_test_id("classify-msg")).to_contain_text("请填写诉求内容或标题")
    sync_api.expect(page.locator("#result")).to_be_hidden()


def test_evidence_words_are_listed_for_a_traditional_chinese_text(live_server, page):
    """The model's evidence words are simplified (油烟): not found in 油煙, they are listed anyway."""
    page.goto(live_server + "/")
    page.fill("#text", "我家樓下的燒烤店油煙很大")
    page.get_by_test_id("classify").click()
    sync_api.expect(page.get_by_test_id("topic")).to_contain_text("W06")
    words = page.locator("[data-testid=evidence] li").all_inner_texts()
    assert "油烟" in words and "烧烤店" in words


def test_a_long_text_is_shown_shortened_and_the_controls_stay_on_screen(live_server, page):
    page.goto(live_server + "/")
    page.fill("#text", (TEXT * 700)[:19_000])
    page.get_by_test_id("classify").click()
    sync_api.expect(page.get_by_test_id("topic")).to_contain_text("W06")
    sync_api.expect(page.get_by_test_id("confirm")).to_be_in_viewport(ratio=1)
    sync_api.expect(page.get_by_test_id("correct")).to_be_in_viewport(ratio=1)
    assert len(page.get_by_test_id("highlighted").inner_text()) <= 1_010
    assert page.locator("[data-testid=highlighted] mark").count() > 0
    sync_api.expect(page.get_by_test_id("excerpt-note")).to_contain_text("19000")


def test_each_message_without_a_typed_id_gets_its_own(live_server, page, serve_settings):
    """Feedback on the second message must not overwrite the first one's (same generated id)."""
    page.goto(live_server + "/")
    page.fill("#apikey", SERVE_KEY)
    for text in (TEXT, "每天晚上广场舞音响声音特别大，严重扰民。"):
        page.fill("#text", text)
        page.get_by_test_id("classify").click()
        sync_api.expect(page.get_by_test_id("status")).to_contain_text("工单号 op-")
        ticket = page.get_by_test_id("status").inner_text()
        page.get_by_test_id("confirm").click()
        sync_api.expect(page.get_by_test_id("status")).to_contain_text("已保存反馈")
        sync_api.expect(page.get_by_test_id("status")).to_contain_text(ticket)  # the operator keeps the ticket id
    sync_api.expect(page.locator("#msgid")).to_have_value("")
    store = FeedbackStore(serve_settings.db_url)
    rows = list(store.latest_per_message())
    store.close()
    assert len(rows) == 2 and len({r.message_id for r in rows}) == 2
