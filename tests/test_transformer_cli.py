"""The typer commands of chuishao.transformer.cli on a tiny E5S1 file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TRANSFORMER_EXTRA, installed
from typer.testing import CliRunner

from chuishao.transformer.cli import app
from chuishao.transformer.tiny import write_tiny_e5

pytestmark = [pytest.mark.transformer,  # torch and onnxruntime: make test runs these, make check does not
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra")]

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "labelled-mini.jsonl"


def _last_json(output: str) -> dict:
    """The last JSON object printed (progress bars of the weight loader share the captured output)."""
    return json.loads([x[x.index("{"):] for x in output.splitlines() if "{" in x][-1])


def test_cli_import_finetune_export_predict(tmp_path: Path) -> None:
    rows = [json.loads(x) for x in FIXTURE.read_text(encoding="utf-8").splitlines() if x.strip()]
    src = tmp_path / "tiny.bin"
    write_tiny_e5(src, [r["title"] + "。" + r["text"] for r in rows], hidden=32, layers=2, heads=2, ffn=64)
    run = CliRunner().invoke
    r = run(app, ["import-encoder", str(tmp_path / "enc"), "--src", str(src), "--keep-vocab-from", str(FIXTURE),
                  "--layers", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["num_hidden_layers"] == 1
    bad = run(app, ["finetune", str(tmp_path / "enc"), str(FIXTURE), str(tmp_path / "ft"), "--bf16", "sometimes"])
    assert bad.exit_code != 0 and "true | false | auto" in bad.output
    bad = run(app, ["finetune", str(tmp_path / "enc"), str(FIXTURE), str(tmp_path / "ft"), "--dev-fraction", "-0.1"])
    assert bad.exit_code != 0 and "no dev split" in bad.output and not (tmp_path / "ft").exists()
    r = run(app, ["finetune", str(tmp_path / "enc"), str(FIXTURE), str(tmp_path / "all"), "--max-steps", "1",
                  "--batch-size", "8", "--max-length", "48", "--dev-fraction", "0", "--temperature", "1.7"])
    assert r.exit_code == 0 and _last_json(r.output) == {"dev": None, "temperature": 1.7}, r.output
    for flags, says in ((["--dev-fraction", "0"], "give the temperature"), (["--temperature", "1.2"], "only with"),
                        (["--dev-fraction", "0", "--temperature", "0"], "above 0"),
                        (["--dev-fraction", "0", "--temperature", "nan"], "above 0")):
        bad = run(app, ["finetune", str(tmp_path / "enc"), str(FIXTURE), str(tmp_path / "no"), *flags])
        assert bad.exit_code == 2 and says in bad.output and not (tmp_path / "no").exists(), flags
    r = run(app, ["finetune", str(tmp_path / "enc"), str(FIXTURE), str(tmp_path / "ft"), "--max-steps", "2",
                  "--batch-size", "8", "--max-length", "48", "--dev-fraction", "0.2", "--bf16", "auto"])
    assert r.exit_code == 0, r.output
    from chuishao.transformer.finetune import cpu_has_bf16

    saved = json.loads((tmp_path / "ft" / "chuishao_transformer.json").read_text())["config"]
    assert saved["bf16"] is cpu_has_bf16()  # auto: what this CPU computes natively
    r = run(app, ["evaluate", str(tmp_path / "ft"), str(FIXTURE), "--dev-fraction", "0.2"])
    assert r.exit_code == 0 and _last_json(r.output)["rows"] > 0, r.output
    r = run(app, ["export-onnx", str(tmp_path / "ft"), str(tmp_path / "onnx"), "--check", str(FIXTURE)])
    assert r.exit_code == 0, r.output
    assert _last_json(r.output)["fp32"]["max_abs_diff"] < 1e-4
    r = run(app, ["predict-onnx", str(tmp_path / "onnx"), str(FIXTURE)])
    assert r.exit_code == 0, r.output
    out = [json.loads(x[x.index('{"id"'):]) for x in r.output.splitlines() if '{"id"' in x]
    assert [o["id"] for o in out] == [x["id"] for x in rows]
