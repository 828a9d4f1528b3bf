"""The cascade recipe's work folder (chuishao.recipes.cascade): step keys follow the contents of the files a step
reads, a stopped fine-tuning keeps its output for the rerun to resume, renamed fields are refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chuishao.config import ChuishaoConfig
from chuishao.errors import DataError
from chuishao.recipes.cascade import _key, _stale_students, _Work, check_recipe

STEPS = ("classical", "dev-exclude", "dev-classical", "extra-rows", "pretrain", "finetune", "export-onnx", "refit")
ROWS = [{"id": f"m{i}", "title": "噪音", "text": "楼下广场舞噪音太大", "label": "W05" if i % 2 else "W06"}
        for i in range(6)]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    data, enc = tmp_path / "data.jsonl", tmp_path / "enc"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    enc.mkdir()
    (enc / "config.json").write_text('{"hidden_size": 32}', encoding="utf-8")
    (enc / "model.safetensors").write_bytes(b"weights one")
    return data, enc


def _recipe(data: Path, enc: Path, **overrides: str) -> ChuishaoConfig:
    return ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": str(enc),
                                      "data.train": [str(data)], "transformer.pretrain_steps": "5", **overrides})


def _keys(recipe: ChuishaoConfig) -> dict[str, str]:
    return {step: _key(recipe, step) for step in STEPS}


def test_relabelled_data_redoes_every_step(tmp_path):
    data, enc = _files(tmp_path)
    before = _keys(_recipe(data, enc))
    data.write_text(data.read_text(encoding="utf-8").replace('"W06"', '"W05"'), encoding="utf-8")  # same size
    after = _keys(_recipe(data, enc))
    assert {s for s in STEPS if before[s] == after[s]} == set()


def test_a_reimported_encoder_redoes_the_encoder_steps_only(tmp_path):
    data, enc = _files(tmp_path)
    before = _keys(_recipe(data, enc))
    (enc / "model.safetensors").write_bytes(b"weights two")  # re-imported into the same folder
    after = _keys(_recipe(data, enc))
    assert {s for s in STEPS if before[s] != after[s]} == {"pretrain", "finetune", "export-onnx", "refit"}
    (enc / "config.json").write_text('{"hidden_size": 64}', encoding="utf-8")
    assert _key(_recipe(data, enc), "finetune") != after["finetune"]


def test_an_unchanged_rerun_keeps_the_keys(tmp_path):
    data, enc = _files(tmp_path)
    assert _keys(_recipe(data, enc)) == _keys(_recipe(data, enc))


def test_the_encoder_labels_count_from_the_extra_rows_on(tmp_path):
    data, enc = _files(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nc1,W05\n", encoding="utf-8")
    recipe = _recipe(data, enc, **{"transformer.extra_labels": [str(labels)], "data.corpus": str(data)})
    before = _keys(recipe)
    labels.write_text("id,label\nc1,W06\n", encoding="utf-8")
    after = _keys(recipe)
    assert {s for s in STEPS if before[s] != after[s]} == {"extra-rows", "finetune", "export-onnx", "refit"}


def test_a_stopped_resumable_step_keeps_its_output_for_the_same_key_only(tmp_path):
    data, enc = _files(tmp_path)
    said: list[str] = []
    out = tmp_path / "work" / "encoder"

    def killed() -> None:
        (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
        raise KeyboardInterrupt

    def seen() -> dict[str, bool]:
        return {"kept": (out / "checkpoints" / "checkpoint-2").is_dir()}

    work = _Work(tmp_path / "work", _recipe(data, enc), said.append)
    with pytest.raises(KeyboardInterrupt):
        work.step("finetune", out, killed, resumable=True)
    work.step("finetune", out, seen, resumable=True)
    assert said[-1].startswith("finetune: resuming")
    assert json.loads((tmp_path / "work" / "finetune.done.json").read_text())["result"] == {"kept": True}
    assert not (tmp_path / "work" / "finetune.started.json").exists()
    work.step("finetune", out, seen, resumable=True)
    assert said[-1].startswith("finetune: done before")

    work.forget("finetune")
    with pytest.raises(KeyboardInterrupt):  # stopped again, then rerun by another recipe: started afresh
        work.step("finetune", out, lambda: (_ for _ in ()).throw(KeyboardInterrupt), resumable=True)
    other = _Work(tmp_path / "work", _recipe(data, enc, **{"transformer.lr": "0.002"}), said.append)
    other.step("finetune", out, seen, resumable=True)
    assert said[-1] == "finetune: running"
    assert json.loads((tmp_path / "work" / "finetune.done.json").read_text())["result"] == {"kept": False}


def test_a_stopped_step_that_cannot_resume_starts_afresh(tmp_path):
    data, enc = _files(tmp_path)
    out = tmp_path / "work" / "onnx"

    def killed() -> None:
        out.mkdir(parents=True)
        raise KeyboardInterrupt

    work = _Work(tmp_path / "work", _recipe(data, enc), lambda line: None)
    with pytest.raises(KeyboardInterrupt):
        work.step("export-onnx", out, killed)
    work.step("export-onnx", out, lambda: out.exists())
    assert json.loads((tmp_path / "work" / "export-onnx.done.json").read_text())["result"] is False


@pytest.mark.parametrize("field", ["label_field", "text_field", "title_field", "id_field"])
def test_renamed_fields_are_refused_before_any_training(tmp_path, field):
    data, enc = _files(tmp_path)
    with pytest.raises(DataError, match=f"data.{field}"):
        check_recipe(_recipe(data, enc, **{f"data.{field}": "类别"}))
    assert check_recipe(_recipe(data, enc)) == (enc, data)


def test_students_need_the_corpus_and_do_not_combine_with_refit(tmp_path):
    data, enc = _files(tmp_path)
    with pytest.raises(DataError, match=r"transformer\.students need data\.corpus"):
        check_recipe(_recipe(data, enc, **{"transformer.students": "1", "data.corpus": "null"}))
    with pytest.raises(DataError, match=r"transformer\.students and transformer\.refit do not combine"):
        check_recipe(_recipe(data, enc, **{"transformer.students": "1", "data.corpus": str(data),
                                           "transformer.refit": "true"}))
    assert check_recipe(_recipe(data, enc, **{"transformer.students": "1", "data.corpus": str(data)})) == (enc, data)


def test_the_encoders_labels_are_checked_against_the_classical_model_before_fine_tuning(tiny_model_dir, tmp_path):
    """A label only one side has would make the cascade refuse after hours of fine-tuning: refused first."""
    from chuishao.models.persistence import load_classical
    from chuishao.recipes.cascade import _same_labels

    classes = [str(c) for c in load_classical(tiny_model_dir).classes_]
    rows = tmp_path / "rows.jsonl"
    extra = tmp_path / "extra.jsonl"
    rows.write_text("".join(json.dumps({"id": str(i), "text": "t", "label": c}) + "\n"
                            for i, c in enumerate(classes[1:])), encoding="utf-8")
    extra.write_text(json.dumps({"id": "x", "text": "t", "label": classes[0]}) + "\n", encoding="utf-8")
    _same_labels(tiny_model_dir, [rows, extra])  # together they hold every label: accepted
    with pytest.raises(DataError, match=f"lack the classical model's {classes[0]}"):
        _same_labels(tiny_model_dir, [rows])
    extra.write_text(json.dumps({"id": "x", "text": "t", "label": "W99"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"\) lack the classical model's {classes[0]}; they have W99, which the classical "
                                        rf"model does not: the cascade needs the same labels"):
        _same_labels(tiny_model_dir, [rows, extra])


def test_students_are_redone_when_their_teachers_were_fine_tuned_again(tmp_path):
    """The teachers' temperatures recorded with the pseudo-labels decide: other ones, or none recorded, redo the
    pseudo-labels and every student's steps, however many students there were."""
    work, onnx = tmp_path / "work", tmp_path / "work" / "onnx"
    onnx.mkdir(parents=True)
    (onnx / "chuishao_transformer.json").write_text('{"temperature": 1.25}', encoding="utf-8")
    assert _stale_students(work, [onnx]) == []  # nothing labelled yet
    for name in ("student", "export-student", "student-2", "export-student-2", "finetune"):
        (work / f"{name}.done.json").write_text('{"key": "k"}', encoding="utf-8")
    marker = work / "pseudo-labels.done.json"
    marker.write_text(json.dumps({"key": "k", "result": {"rows": 3, "teachers": [1.25]}}), encoding="utf-8")
    assert _stale_students(work, [onnx]) == []
    redo = ["pseudo-labels", "export-student", "export-student-2", "student", "student-2"]
    marker.write_text(json.dumps({"key": "k", "result": {"rows": 3, "teachers": [0.9]}}), encoding="utf-8")
    assert _stale_students(work, [onnx]) == redo
    marker.write_text(json.dumps({"key": "k", "result": {"rows": 3}}), encoding="utf-8")  # made before they were kept
    assert _stale_students(work, [onnx]) == redo
