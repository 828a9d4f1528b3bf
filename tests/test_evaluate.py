"""`chuishao test` figures and report: sub accuracy, top-3, error rows, unlearned labels, the picture."""

from __future__ import annotations

import copy
import csv
import json
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import FIXTURES, tiny_config
from sklearn.metrics import top_k_accuracy_score
from typer.testing import CliRunner

from chuishao.cli import app
from chuishao.errors import DataError
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.training.data import LabelledSet
from chuishao.training.evaluate import evaluate, write_report

MINI = FIXTURES / "labelled-mini.jsonl"
# Teddy-7-like names: labels no Latin-only font can draw
CHINESE = {"OTHER": "城乡建设", "W01": "劳动和社会保障", "W05": "教育文体", "W06": "商贸旅游",
           "W09": "环境保护", "W10": "卫生计生", "W13": "交通运输"}


def _with(data: LabelledSet, **columns: list) -> LabelledSet:
    """A copy of ``data`` with some columns replaced."""
    out = data.take(list(range(len(data))))
    for name, values in columns.items():
        setattr(out, name, list(values))
    return out


def _plus_row(data: LabelledSet, text: object, label: str, sub: str | None = None) -> LabelledSet:
    out = data.take(list(range(len(data))))
    out.extend(LabelledSet(ids=["extra"], titles=[None], texts=[text], labels=[label], subs=[sub], weights=[1.0]))
    return out


@pytest.fixture(scope="module")
def free_model(mini_data) -> ChuishaoClassifier:
    """As `--taxonomy none`: no taxonomy, so no sub-problem models."""
    model = ChuishaoClassifier(tiny_config(), None)
    return model.fit(mini_data.texts, mini_data.labels, titles=mini_data.titles, subs=mini_data.subs, weights=mini_data.weights)


@pytest.fixture(scope="module")
def chinese_data(mini_data) -> LabelledSet:
    return _with(mini_data, labels=[CHINESE[lab] for lab in mini_data.labels], subs=[None] * len(mini_data))


@pytest.fixture(scope="module")
def chinese_model(chinese_data) -> ChuishaoClassifier:
    model = ChuishaoClassifier(tiny_config(), None)
    return model.fit(chinese_data.texts, chinese_data.labels, titles=chinese_data.titles)


def _top_k_one(model: ChuishaoClassifier) -> ChuishaoClassifier:
    """The same weights answering with `review.top_k: 1`."""
    short = copy.copy(model)
    short.config = model.config.model_copy(deep=True)
    short.config.review.top_k = 1
    return short


# ---- 1. sub-problem accuracy ------------------------------------------------------------------
def test_sub_accuracy_is_null_for_a_model_without_sub_problems(free_model, mini_data):
    assert any(mini_data.subs)
    assert evaluate(free_model, mini_data)["sub_accuracy_given_topic"] is None


def test_sub_accuracy_is_still_scored_for_a_taxonomy_model(tiny_model, mini_data):
    assert evaluate(tiny_model, mini_data)["sub_accuracy_given_topic"] == 1.0


# ---- 2. top-3 accuracy ------------------------------------------------------------------------
@pytest.mark.parametrize("top_k", [1, 3])
def test_top3_is_from_the_full_probabilities_whatever_review_top_k(tiny_model, mini_data, top_k):
    model = tiny_model if top_k == 3 else _top_k_one(tiny_model)
    proba = tiny_model.predict_proba(mini_data.texts, titles=mini_data.titles)
    # every row labelled with its second most probable class: never right, always in the top 3
    second = [tiny_model.classes_[i] for i in np.argsort(-proba, axis=1)[:, 1]]
    figures = evaluate(model, _with(mini_data, labels=second, subs=[None] * len(mini_data)))
    assert figures["accuracy"] == 0.0
    assert figures["top3_accuracy"] == 1.0


def test_top3_agrees_with_sklearn(tiny_model, mini_data):
    rng = np.random.default_rng(0)
    labels = list(rng.choice(tiny_model.classes_, size=len(mini_data)))
    proba = tiny_model.predict_proba(mini_data.texts, titles=mini_data.titles)
    expected = top_k_accuracy_score(labels, proba, k=3, labels=tiny_model.classes_)
    assert 0 < expected < 1
    figures = evaluate(_top_k_one(tiny_model), _with(mini_data, labels=labels, subs=[None] * len(mini_data)))
    assert figures["top3_accuracy"] == round(expected, 4)


# ---- 3. error rows ----------------------------------------------------------------------------
def test_error_rows_are_a_column_of_the_confusion_matrix(tiny_model, mini_data, tmp_path):
    data = _plus_row(mini_data, "", "W05")
    figures = evaluate(tiny_model, data)
    assert figures["errors"] == 1 and figures["n"] == len(mini_data) + 1
    confusion = np.array(figures["confusion"])
    assert confusion.sum() == figures["n"]  # every row is somewhere
    labels = figures["labels"]
    assert confusion.shape == (len(labels), len(labels) + 1)
    assert confusion[labels.index("W05"), -1] == 1
    assert figures["per_class"]["W05"]["errors"] == 1 and figures["per_class"]["W05"]["support"] == 6

    write_report(figures, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert saved["confusion_columns"] == [*labels, "(error)"]
    with (tmp_path / "per_class.csv").open(encoding="utf-8") as fh:
        rows = {row["label"]: row for row in csv.DictReader(fh)}
    assert rows["W05"]["errors"] == "1" and rows["W01"]["errors"] == "0"
    assert "(error)" in (tmp_path / "report.md").read_text(encoding="utf-8")


# ---- 4. labels of the taxonomy the model never learned -------------------------------------------
def test_a_taxonomy_label_the_model_never_learned_is_scored_with_a_warning(tiny_model, mini_data, capsys):
    assert "W02" in tiny_model.taxonomy.labels and "W02" not in tiny_model.classes_
    data = _plus_row(mini_data, "小区门口的路灯坏了一个月了，晚上出行很不方便，希望尽快维修。", "W02")
    figures = evaluate(tiny_model, data)
    assert figures["per_class"]["W02"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "errors": 0}
    assert figures["unlearned_labels"] == ["W02"]
    assert np.array(figures["confusion"]).sum() == len(data)
    assert "W02" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["taxonomy", "free"])
def test_a_label_outside_the_models_taxonomy_is_still_an_error(tiny_model, free_model, mini_data, which):
    model = tiny_model if which == "taxonomy" else free_model
    label = "W99" if which == "taxonomy" else "W02"  # a free model's taxonomy is its training labels
    with pytest.raises(DataError, match="another taxonomy"):
        evaluate(model, _plus_row(mini_data, "路灯坏了", label))


# ---- 5. null text -----------------------------------------------------------------------------
def test_null_text_is_an_error_row_like_empty_text(tiny_model_dir, tmp_path):
    rows = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()[:5]]
    rows[0]["text"], rows[1]["text"] = None, ""
    for row in rows[:2]:
        row.pop("title", None)  # a title alone is classified: these two must have nothing
    src = tmp_path / "nulls.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["test", str(tiny_model_dir), str(src)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["errors"] == 2


# ---- 6. the picture ---------------------------------------------------------------------------
@pytest.fixture()
def saved_figures(monkeypatch) -> list:
    """Each figure the report saves, as it was when saved."""
    from matplotlib.figure import Figure

    saved: list = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


@pytest.fixture()
def no_cjk_font(monkeypatch) -> Iterator[None]:
    from matplotlib import font_manager

    from chuishao.training import evaluate as module

    families = getattr(module, "CJK_FAMILIES", ())
    keep = [e for e in font_manager.fontManager.ttflist if not e.name.startswith(families)]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", keep)
    # nor the installed font files matplotlib's cached list lacks
    monkeypatch.setattr(module, "_add_system_cjk_fonts", lambda: False, raising=False)
    # and forget the fonts an earlier test found: findfont remembers its answers
    font_manager.FontManager._findfont_cached.cache_clear()
    yield
    font_manager.FontManager._findfont_cached.cache_clear()


def _texts_fit(fig) -> list[str]:
    """The texts of the figure that stick out of it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the report closed the figure: draw it again
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [fig._suptitle, *(ax.title for ax in fig.axes), *(t for ax in fig.axes for t in ax.get_xticklabels()),
             *(t for ax in fig.axes for t in ax.get_yticklabels())]
    box = fig.bbox
    out = []
    for t in texts:
        if t is None or not t.get_text():
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
            out.append(t.get_text())
    return out


def test_without_a_cjk_font_chinese_labels_get_codes_and_no_glyph_warnings(
        chinese_model, chinese_data, tmp_path, saved_figures, no_cjk_font):
    figures = evaluate(chinese_model, chinese_data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_report(figures, tmp_path)
    assert not [str(w.message) for w in caught if "Glyph" in str(w.message)]
    (fig,) = saved_figures
    ticks = [t.get_text() for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
    assert ticks and all(t.isascii() for t in ticks)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    codes = sorted(CHINESE.values())
    for i, label in enumerate(codes, start=1):  # the code -> label table, beside the per-class table
        assert f"| L{i} | {label} |" in report
        assert f"L{i}" in ticks


def test_the_title_fits_in_the_picture(chinese_model, chinese_data, tmp_path, saved_figures, no_cjk_font):
    write_report(evaluate(chinese_model, chinese_data), tmp_path)
    (fig,) = saved_figures
    assert _texts_fit(fig) == []


def test_latin_labels_are_drawn_as_they_are(tiny_model, mini_data, tmp_path, saved_figures, no_cjk_font):
    write_report(evaluate(tiny_model, mini_data), tmp_path)
    assert "| code | label |" not in (tmp_path / "report.md").read_text(encoding="utf-8")
    ticks = {t.get_text() for ax in saved_figures[0].axes for t in ax.get_xticklabels()}
    assert {"W05", "OTHER", "(error)"} <= ticks
    assert _texts_fit(saved_figures[0]) == []


def test_a_cjk_family_is_chosen_by_name_but_trusted_only_for_the_glyphs_it_has(monkeypatch, no_cjk_font):
    from matplotlib import font_manager

    from chuishao.training import evaluate as module

    assert module.cjk_family() is None
    dejavu = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    fake = font_manager.FontEntry(fname=dejavu, name="Noto Sans CJK SC")  # a CJK name on a Latin font
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [*font_manager.fontManager.ttflist, fake])
    assert module.cjk_family() == "Noto Sans CJK SC"
    _, codes = module.confusion_figure(np.eye(2, 3, dtype=int), ["城乡建设", "W01"], ["城乡建设", "W01", "(error)"])
    assert codes == {"城乡建设": "L1"}


def test_with_a_cjk_font_chinese_labels_are_drawn(chinese_model, chinese_data, tmp_path, saved_figures):
    from chuishao.training import evaluate as module

    if module.cjk_family() is None:
        pytest.skip("no CJK font installed for matplotlib")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_report(evaluate(chinese_model, chinese_data), tmp_path)
    assert not [str(w.message) for w in caught if "Glyph" in str(w.message)]
    ticks = {t.get_text() for ax in saved_figures[0].axes for t in ax.get_yticklabels()}
    assert set(CHINESE.values()) <= ticks
