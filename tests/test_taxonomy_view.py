"""GET /v1/taxonomy's shape, and the operator page on a model trained with --taxonomy none."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from conftest import SERVE_KEY, served, tiny_config

from chuishao.serve.taxonomy_view import taxonomy_view
from chuishao.taxonomy import Taxonomy

TOPIC_KEYS = {"code", "name", "area", "lead", "assist", "subs"}


@pytest.mark.parametrize("tax", [Taxonomy.load(), Taxonomy.free(["交通运输", "教育文体"])], ids=["whistle-15", "free"])
def test_every_topic_has_the_same_fields(tax):
    """The page reads subs, assist and lead of any topic: a free label set has them too, empty."""
    view = taxonomy_view(tax)
    assert view["topics"] and all(set(t) == TOPIC_KEYS for t in view["topics"])
    for t in view["topics"]:
        assert isinstance(t["subs"], list) and isinstance(t["assist"], list)
        assert t["lead"] is None or (isinstance(t["lead"], str) and t["lead"])


def test_free_label_set_view():
    view = taxonomy_view(Taxonomy.free(["交通运输", "教育文体"]))
    assert view["topics"] == [{"code": c, "name": c, "area": None, "lead": None, "assist": [], "subs": []}
                              for c in ("交通运输", "教育文体")]
    assert view["areas"] == [] and view["departments"] == []


# ---- the operator page in headless Chromium (skipped without playwright or chromium) ------------
CHROMIUM = os.environ.get("CHUISHAO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
TEXT = "楼下烧烤店油烟直接排到居民楼，窗户都不敢开，油烟味很重。"


@pytest.fixture()
def sync_api():  # requested first: skips before a model is trained for nothing
    api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set CHUISHAO_CHROMIUM)")
    return api


@pytest.fixture()
def free_server(mini_data, tmp_path) -> Iterator[str]:
    """The service on a model trained without a taxonomy (``--taxonomy none``)."""
    pytest.importorskip("fastapi")

    from chuishao.models.classifier import ChuishaoClassifier
    from chuishao.models.persistence import save_model
    from chuishao.serve.app import create_app
    from chuishao.serve.settings import ServeSettings

    model = ChuishaoClassifier(tiny_config(), Taxonomy.free(mini_data.labels))
    model.fit(mini_data.texts, mini_data.labels, titles=mini_data.titles, subs=mini_data.subs, weights=mini_data.weights)
    model.metadata["version"] = "tiny-free"
    settings = ServeSettings(model_dir=save_model(model, tmp_path / "free"), api_keys=[SERVE_KEY],
                             db_url=f"sqlite:///{tmp_path / 'feedback.sqlite3'}", model_poll_seconds=0)
    with served(create_app(settings)) as url:
        yield url


@pytest.mark.browser
@pytest.mark.parametrize("bare", [False, True], ids=["served-view", "bare-topics"])
def test_operator_page_works_with_a_free_label_model(sync_api, free_server: str, bare: bool):
    """bare: /v1/taxonomy as it was before (topics with code and name only): the page copes alone."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            if bare:
                codes = sorted({"W05", "W06", "OTHER"})
                page.route("**/v1/taxonomy", lambda route: route.fulfill(
                    json={"name": "none", "topics": [{"code": c, "name": c} for c in codes]}))
            page.goto(free_server + "/")
            sync_api.expect(page.get_by_test_id("version")).to_have_text("模型 tiny-free")
            page.fill("#text", TEXT)
            page.get_by_test_id("classify").click()
            sync_api.expect(page.get_by_test_id("status")).to_contain_text("工单号")  # not "无法分类：…"
            sync_api.expect(page.get_by_test_id("topic")).not_to_be_empty()
            sync_api.expect(page.get_by_test_id("lead")).to_have_text("—")
            assert page.locator("[data-testid=fix-sub] option").all_inner_texts() == ["（不指定）"]

            page.select_option("[data-testid=fix-topic]", "W05")  # changing the topic refills the form
            sync_api.expect(page.get_by_test_id("fix-lead")).to_have_value("")
            sync_api.expect(page.get_by_test_id("fix-assist")).to_have_value("")
            page.fill("#apikey", SERVE_KEY)
            page.fill("[data-testid=fix-lead]", "生态环境局")
            page.get_by_test_id("correct").click()
            sync_api.expect(page.get_by_test_id("status")).to_contain_text("已保存反馈")
            assert errors == []
        finally:
            browser.close()
