"""User errors of the transformer commands: one line naming the file and what is wrong, never a traceback, and
nothing half-written (import-encoder, export-onnx, cascade, evaluate, predict-onnx, dev-exclude, extra-rows)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, TRANSFORMER_EXTRA, installed
from typer.testing import CliRunner

from chuishao.errors import DataError, ModelLoadError
from chuishao.transformer.cli import app

pytestmark = [pytest.mark.transformer,  # torch and onnxruntime: make test runs these, make check does not
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra")]

MINI = FIXTURES / "labelled-mini.jsonl"
run = CliRunner().invoke


def _error_line(result) -> str:
    """The command's one error line (exit 2, no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines and lines[-1].startswith("chuishao: error: "), result.output
    return lines[-1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from chuishao.transformer.encoder_import import convert
    from chuishao.transformer.tiny import write_tiny_e5

    d = tmp_path_factory.mktemp("errors")
    rows = [json.loads(x) for x in MINI.read_text(encoding="utf-8").splitlines() if x.strip()]
    write_tiny_e5(d / "tiny.bin", [r["title"] + "。" + r["text"] for r in rows], hidden=32, layers=1, heads=2, ffn=64)
    convert(d / "tiny.bin", d / "enc", keep_vocab_from=[MINI])
    return {"dir": d, "src": d / "tiny.bin", "enc": d / "enc"}


# ---------------------------------------------------------------- import-encoder

def test_unreadable_sources_are_one_line_errors(tiny, tmp_path: Path) -> None:
    data = tiny["src"].read_bytes()
    (tmp_path / "trunc.bin").write_bytes(data[:20000])
    (tmp_path / "header.bin").write_bytes(data[:40])
    (tmp_path / "empty.bin").write_bytes(b"")
    cases = {
        tmp_path / "missing.bin": "no such file",
        tmp_path / "trunc.bin": f"truncated e5 q4 file: expected {len(data)} bytes, has 20000",
        tmp_path / "header.bin": "truncated e5 q4 file: expected at least 72 bytes, has 40",
        MINI: "not an e5 q4 file",
        tmp_path / "empty.bin": "not an e5 q4 file",
        Path("/dev/null"): "not an e5 q4 file",
    }
    for src, says in cases.items():
        line = _error_line(run(app, ["import-encoder", str(tmp_path / "out"), "--src", str(src)]))
        assert str(src) in line and says in line, (src, line)
        assert not (tmp_path / "out").exists()
    from chuishao.transformer.encoder_import import read_e5_file

    with pytest.raises(ModelLoadError, match="truncated"):
        read_e5_file(tmp_path / "trunc.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.bin", "header.bin", "trunc.bin"]  # no leftovers


def test_an_existing_folder_is_not_overwritten(tiny, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    line = _error_line(run(app, ["import-encoder", str(other), "--src", str(tiny["src"])]))
    assert "not an import-encoder folder" in line
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    line = _error_line(run(app, ["import-encoder", str(other), "--src", str(tiny["src"]), "--force"]))
    assert "not an import-encoder folder" in line  # --force replaces only a previous import

    enc = tmp_path / "enc"
    shutil.copytree(tiny["enc"], enc)
    (enc / "config.json").write_text("{}", encoding="utf-8")
    line = _error_line(run(app, ["import-encoder", str(enc), "--src", str(tiny["src"])]))
    assert "previous import" in line and "--force" in line
    assert (enc / "config.json").read_text(encoding="utf-8") == "{}"
    r = run(app, ["import-encoder", str(enc), "--src", str(tiny["src"]), "--force", "--layers", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads((enc / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(app, ["import-encoder", str(empty), "--src", str(tiny["src"])]).exit_code == 0
    assert (empty / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_a_failed_import_leaves_nothing(tiny, tmp_path: Path) -> None:
    from chuishao.transformer.encoder_import import convert

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "好"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2"):
        convert(tiny["src"], tmp_path / "out", keep_vocab_from=[bad])
    with pytest.raises(DataError, match=r"missing\.jsonl: no such file"):
        convert(tiny["src"], tmp_path / "out", keep_vocab_from=[tmp_path / "missing.jsonl"])
    with pytest.raises(DataError, match="--layers 3"):
        convert(tiny["src"], tmp_path / "out", layers=3)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.jsonl"]


# ---------------------------------------------------------------- export-onnx, evaluate, predict-onnx

def test_export_refuses_an_encoder_that_was_never_fine_tuned(tiny, tmp_path: Path) -> None:
    line = _error_line(run(app, ["export-onnx", str(tiny["enc"]), str(tmp_path / "onnx")]))
    assert "not a fine-tuned model" in line and "fine-tune it first" in line and str(tiny["enc"]) in line
    assert not (tmp_path / "onnx").exists()
    line = _error_line(run(app, ["export-onnx", str(tmp_path / "nope"), str(tmp_path / "onnx")]))
    assert "no such folder" in line and not (tmp_path / "onnx").exists()
    line = _error_line(run(app, ["evaluate", str(tiny["enc"]), str(MINI)]))
    assert "not a fine-tuned model" in line


def test_other_commands_name_the_missing_file(tiny, tmp_path: Path) -> None:
    line = _error_line(run(app, ["predict-onnx", str(tmp_path / "nope"), str(MINI)]))
    assert "nope" in line and "model.onnx" in line
    line = _error_line(run(app, ["dev-exclude", str(tmp_path / "train.jsonl"), "-o", str(tmp_path / "x.jsonl")]))
    assert "train.jsonl: no such file" in line
    line = _error_line(run(app, ["dev-exclude", str(tiny["src"]), "-o", str(tmp_path / "x.jsonl")]))
    assert "tiny.bin" in line
    line = _error_line(run(app, ["extra-rows", "--corpus", str(MINI), "--labels", str(tmp_path / "l.csv"),
                                 "-o", str(tmp_path / "x.jsonl")]))
    assert "l.csv: no such file" in line
    line = _error_line(run(app, ["extra-rows", "--corpus", str(MINI), "--labels", str(MINI),
                                 "--exclude", str(tmp_path / "ex.jsonl"), "-o", str(tmp_path / "x.jsonl")]))
    assert "ex.jsonl: no such file" in line
    assert not (tmp_path / "x.jsonl").exists()


# ---------------------------------------------------------------- cascade

def test_cascade_refuses_an_encoder_without_the_classical_labels(tiny, tmp_path: Path) -> None:
    from chuishao.cli import app as main_app

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("features: {min_df: 1, max_features: null}\nclassifier: {calibration_folds: 2}\n", encoding="utf-8")
    r = run(main_app, ["train", str(MINI), "-o", str(tmp_path / "classical"), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    classes = json.loads((tmp_path / "classical" / "manifest.json").read_text(encoding="utf-8"))["labels"]
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "model.onnx").write_bytes(b"never read: the labels are checked first")
    base = ["cascade", "--classical", str(tmp_path / "classical"), "--dev-classical", str(tmp_path / "classical"),
            "--transformer", str(onnx), "--dev-from", str(MINI), "--dev-fraction", "0.2", "-o", str(tmp_path / "casc")]
    for labels, says in ((["LABEL_0", "LABEL_1"], "lacks the classical model's"),
                         (classes[:-1], f"lacks the classical model's {classes[-1]}"),
                         ([*classes, "W99"], "has W99")):
        (onnx / "chuishao_transformer.json").write_text(json.dumps({"labels": labels}), encoding="utf-8")
        line = _error_line(run(app, base))
        assert says in line and str(onnx) in line, line
        assert not (tmp_path / "casc").exists()
    line = _error_line(run(app, [*base[:-2], "-o", str(tmp_path / "casc"), "--dev-from", str(tmp_path / "dev.jsonl")]))
    assert "dev.jsonl: no such file" in line
