"""chuishao.transformer.finetune on a tiny random encoder: a stopped run resumes from its last checkpoint (only a run
of the same settings on the same files), and bad inputs are one-line errors before any output folder exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, TRANSFORMER_EXTRA, installed
from typer.testing import CliRunner

pytestmark = [pytest.mark.transformer,  # torch: make test runs these, make check does not
              installed(*TRANSFORMER_EXTRA, why="needs the transformer extra")]

MINI = FIXTURES / "labelled-mini.jsonl"


@pytest.fixture(scope="module")
def enc(tmp_path_factory) -> Path:
    from chuishao.transformer.data import read_jsonl
    from chuishao.transformer.encoder_import import convert
    from chuishao.transformer.tiny import write_tiny_e5

    tmp = tmp_path_factory.mktemp("enc")
    write_tiny_e5(tmp / "tiny.bin", [r["title"] + "。" + r["text"] for r in read_jsonl(MINI)], hidden=32, layers=1,
                  heads=2, ffn=64)
    convert(tmp / "tiny.bin", tmp / "enc", keep_vocab_from=[MINI])
    return tmp / "enc"


def _cfg(enc: Path, out: Path, **kw):
    from chuishao.transformer.finetune import FinetuneConfig

    settings = {"train": str(MINI), "max_steps": 6, "batch_size": 4, "max_length": 48, "lr": 1e-3, "threads": 1,
                "dev_fraction": 0.2, "evals_per_epoch": 3, "patience": 10, "resume": True, **kw}
    return FinetuneConfig(model_dir=str(enc), out_dir=str(out), **settings)


def _stop_after_first_save(monkeypatch) -> None:
    """The run is killed (KeyboardInterrupt) right after its first checkpoint is saved."""
    from chuishao.transformer import finetune as ft

    class Killed(ft.ProgressCallback):
        def on_save(self, args, state, control, **kw):
            raise KeyboardInterrupt

    monkeypatch.setattr(ft, "ProgressCallback", Killed)


@pytest.mark.parametrize("dev_fraction", [0.2, 0.0])
def test_a_stopped_finetune_resumes_from_its_last_checkpoint(enc, tmp_path, monkeypatch, capsys, dev_fraction):
    from chuishao.transformer.finetune import finetune

    temperature = {"temperature": 1.5} if dev_fraction == 0 else {}
    cfg = _cfg(enc, tmp_path / "ft", dev_fraction=dev_fraction, **temperature)
    with monkeypatch.context() as m:
        _stop_after_first_save(m)
        with pytest.raises(KeyboardInterrupt):
            finetune(cfg)
    saved = [int(p.parent.name.removeprefix("checkpoint-"))
             for p in (tmp_path / "ft" / "checkpoints").glob("checkpoint-*/trainer_state.json")]
    assert len(saved) == 1 and 0 < saved[0] < 6
    summary = finetune(cfg)
    assert summary["resumed_from_step"] == saved[0] and summary["global_step"] == 6
    assert "[resume] from" in capsys.readouterr().out
    meta = json.loads((tmp_path / "ft" / "chuishao_transformer.json").read_text())
    assert meta["resumed_from_step"] == saved[0]
    again = finetune(cfg)  # finished: returned as it is, not trained again
    assert again == meta


def test_a_checkpoint_of_other_settings_or_files_is_not_resumed(enc, tmp_path, monkeypatch):
    from chuishao.transformer.finetune import finetune

    data = tmp_path / "train.jsonl"
    data.write_text(MINI.read_text(encoding="utf-8"), encoding="utf-8")
    relabel = lambda: data.write_text(MINI.read_text(encoding="utf-8").replace('"W13"', '"W10"'), encoding="utf-8")  # noqa: E731
    for i, (change, before) in enumerate((({"lr": 2e-3}, None), ({"resume": False}, None), ({}, relabel))):
        out = tmp_path / f"ft{i}"
        with monkeypatch.context() as m:
            _stop_after_first_save(m)
            with pytest.raises(KeyboardInterrupt):
                finetune(_cfg(enc, out, train=str(data)))
        if before:
            before()
        summary = finetune(_cfg(enc, out, train=str(data), **change))
        assert summary["resumed_from_step"] is None and summary["global_step"] == 6, change


def _cli(*args: str):
    from chuishao.transformer.cli import app

    return CliRunner().invoke(app, ["finetune", *args, "--threads", "1"])


def test_bad_inputs_are_one_line_errors_and_leave_no_output(enc, tmp_path):
    not_enc = tmp_path / "not-enc"
    not_enc.mkdir()
    (not_enc / "config.json").write_text("{}", encoding="utf-8")
    empty, one = tmp_path / "empty.jsonl", tmp_path / "one.jsonl"
    empty.write_text("", encoding="utf-8")
    rows = MINI.read_text(encoding="utf-8").splitlines()
    one.write_text("\n".join(r for r in rows if '"W05"' in r) + "\n", encoding="utf-8")
    cases = [((str(not_enc), str(MINI)), "no tokenizer"), ((str(tmp_path), str(MINI)), "not an encoder folder"),
             ((str(enc), str(empty)), "no rows"), ((str(enc), str(one)), "needs at least two"),
             ((str(enc), str(MINI), "--max-length", "0"), "max_length 0"),
             ((str(enc), str(tmp_path / "missing.jsonl")), "missing.jsonl")]
    for i, (args, said) in enumerate(cases):
        out = tmp_path / f"o{i}"
        result = _cli(*args[:2], str(out), *args[2:])
        assert result.exit_code == 2, (args, result.output)
        assert said in result.output and "Traceback" not in result.output, (args, result.output)
        assert not out.exists(), args
