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
