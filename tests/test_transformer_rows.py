"""`chuishao transformer extra-rows`: the encoder's training-only rows joined from our id,label files (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chuishao.errors import DataError
from chuishao.transformer.cli import app
from chuishao.transformer.data import extra_rows


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    corpus = _write(tmp_path / "corpus.jsonl", [
        {"id": f"c{i}", "title": f"标题{i}", "text": f"小区门口第{i}次有人占道经营，影响通行"} for i in range(12)])
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label,sub\n" + "".join(f"c{i},OTHER,\n" for i in range(8)) + "c8,W05,W05a\nc9,W05,W05a\n",
                      encoding="utf-8")
    authored = _write(tmp_path / "authored.jsonl", [{"id": "a1", "title": "t", "text": "楼道里堆满杂物", "label": "W08"}])
    return {"corpus": corpus, "labels": labels, "authored": authored, "dir": tmp_path}


def test_joins_labels_excludes_dev_ids_and_caps_other(files: dict[str, Path]) -> None:
    rows = extra_rows(files["corpus"], [files["labels"]], [files["authored"]], exclude_ids={"c9", "c0"}, max_other=3)
    ids = {r["id"] for r in rows}
    assert "c9" not in ids and "c0" not in ids and {"c8", "a1"} <= ids
    assert sum(r["label"] == "OTHER" for r in rows) == 3
    c8 = next(r for r in rows if r["id"] == "c8")
    assert c8 == {"id": "c8", "title": "标题8", "text": "小区门口第8次有人占道经营，影响通行", "label": "W05"}
    again = extra_rows(files["corpus"], [files["labels"]], [files["authored"]], exclude_ids={"c9", "c0"}, max_other=3)
    assert again == rows  # seeded
    other_seed = extra_rows(files["corpus"], [files["labels"]], [files["authored"]], exclude_ids={"c9", "c0"},
                            max_other=3, seed=5)
    assert {r["id"] for r in other_seed} != ids or [r["id"] for r in other_seed] != [r["id"] for r in rows]


def test_an_id_missing_from_the_corpus_is_an_error(files: dict[str, Path]) -> None:
    files["labels"].write_text("id,label,sub\nnope,W05,\n", encoding="utf-8")
    with pytest.raises(DataError, match="nope"):
        extra_rows(files["corpus"], [files["labels"]])


def test_cli_writes_rows_and_counts(files: dict[str, Path]) -> None:
    exclude = _write(files["dir"] / "dev-exclude.jsonl", [{"id": "c8"}])
    out = files["dir"] / "extra.jsonl"
    result = CliRunner().invoke(app, ["extra-rows", "--corpus", str(files["corpus"]), "--labels", str(files["labels"]),
                                      "--data", str(files["authored"]), "--exclude", str(exclude), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 10 and "c8" not in {r["id"] for r in rows}
    assert json.loads(result.output)["labels"] == {"OTHER": 8, "W05": 1, "W08": 1}


def test_the_dev_exclusion_file_holds_dev_rows_and_labelled_corpus_copies(tmp_path: Path) -> None:
    """dev-exclude writes a held-out file like a test file: each dev row with its text and label, then each corpus
    near-copy (another id) with its own text and the label of the dev row it copies."""
    from chuishao.transformer.cascade_build import dev_exclusion, dev_rows

    texts = {"W05": "小区门口每天早上有人占道经营卖菜，车辆行人无法通行", "W08": "楼道里堆满了杂物和电动车，存在严重的消防隐患"}
    train = _write(tmp_path / "train.jsonl", [
        {"id": f"t{lab}{i}", "title": f"{lab}{i}", "text": f"{texts[lab]}，第{i}号楼", "label": lab}
        for lab in texts for i in range(10)])
    dev = dev_rows(train, 0.2, 0)
    copy_of = dev[0]
    corpus = _write(tmp_path / "corpus.jsonl", [
        {"id": "copy", "title": copy_of["title"], "text": copy_of["text"] + "。"},
        {"id": "other", "title": "路灯", "text": "路口的路灯坏了一个多月没有人来修理"}])
    out = tmp_path / "dev-exclude.jsonl"
    counts = dev_exclusion(train, out, corpus, 0.2, 0)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert counts == {"dev_rows": len(dev), "corpus_near_copies": 1, "ids": len(dev) + 1}
    assert rows[:-1] == [{"id": r["id"], "title": r["title"], "text": r["text"], "label": r["label"]} for r in dev]
    assert rows[-1] == {"id": "copy", "title": copy_of["title"], "text": copy_of["text"] + "。",
                        "label": copy_of["label"]}
