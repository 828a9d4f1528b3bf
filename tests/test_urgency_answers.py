"""Urgency in every answer: predict, tag (and its summary, most urgent first), the service's answer shape."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from chuishao.batch.summary import TagSummary
from chuishao.cli import app
from chuishao.models.answer import RoutingAnswer, answer_dict, empty_urgency
from chuishao.pipeline.annotate import build_annotator

runner = CliRunner()
GAS = "燃气管道漏气了，楼道里一股很浓的煤气味，现在还在漏"
NOISE = "每天晚上八点到十点小区广场舞音响声音特别大，严重扰民，老人孩子都无法休息。"


def test_the_answer_shape_has_urgency() -> None:
    assert empty_urgency() == RoutingAnswer().model_dump()["urgency"]
    assert answer_dict() == RoutingAnswer().model_dump()


def test_the_annotator_fills_urgency_and_can_be_switched_off(monkeypatch, tmp_path: Path) -> None:
    on = build_annotator("none")
    assert on.names == ["urgency"]
    assert on.annotate(None, GAS)["urgency"]["level"] == "high"
    assert on.annotate(None, NOISE)["urgency"]["level"] is None
    assert build_annotator("none", "none").names == []
    monkeypatch.setenv("CHUISHAO_URGENCY_RULES", str(tmp_path / "missing.yaml"))
    try:
        build_annotator("none")
    except Exception as exc:  # noqa: BLE001 - any clear error naming the file will do
        assert "missing.yaml" in str(exc)
    else:
        raise AssertionError("a missing rules file from CHUISHAO_URGENCY_RULES was accepted")


def test_predict_answers_carry_urgency() -> None:
    result = runner.invoke(app, ["predict", "--gazetteer", "none", GAS])
    assert result.exit_code == 0, result.output
    urgency = json.loads(result.stdout)["urgency"]
    assert urgency["level"] == "high" and urgency["triggers"]


def test_tag_summary_lists_urgent_messages_first(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = [{"id": "n1", "text": NOISE}, {"id": "g1", "text": GAS}, {"id": "n2", "text": NOISE + "。"}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = runner.invoke(app, ["tag", str(src), "-o", str(tmp_path / "out.jsonl"), "--gazetteer", "none"])
    assert result.exit_code == 0, result.output
    summary = json.loads(next(line for line in result.stderr.splitlines() if line.startswith("{")))
    assert summary["urgent"]["high"] == 1
    assert summary["most_urgent"][0] == {"row": 2, "id": "g1", "level": "high", "triggers": summary["most_urgent"][0]["triggers"]}
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [a["urgency"]["level"] for a in out] == [None, "high", None]


def test_summaries_merge_and_keep_high_before_medium() -> None:
    a, b = TagSummary(), TagSummary()
    base = answer_dict(topic="W15", needs_review=False)
    a.add({**base, "id": "m", "urgency": {"level": "medium", "triggers": ["x"]}}, row=1)
    b.add({**base, "id": "h", "urgency": {"level": "high", "triggers": ["y"]}}, row=7)
    b.add({**base, "id": "n"}, row=8)
    a.merge(TagSummary.from_state(b.to_state()))
    d = a.as_dict()
    assert d["urgent"] == {"high": 1, "medium": 1}
    assert [u["id"] for u in d["most_urgent"]] == ["h", "m"]


def test_an_old_checkpoint_without_urgency_still_loads() -> None:
    state = TagSummary(rows=1, tagged=1).to_state()
    state.pop("urgent"), state.pop("urgent_counts")
    assert TagSummary.from_state(state).as_dict()["urgent"] == {"high": 0, "medium": 0}
