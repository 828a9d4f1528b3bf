"""`chuishao transformer finetune --resume` continues a stopped run (and without it a run starts at step 0), and a
resumed fine-tuning's train_seconds counts the whole training, the part before the stop included; on a tiny random
encoder."""

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


def _stop_after_first_save(monkeypatch) -> None:
    """The run is killed (KeyboardInterrupt) right after its first checkpoint is saved."""
    from chuishao.transformer import finetune as ft

    class Killed(ft.ProgressCallback):
        def on_save(self, args, state, control, **kw):
            raise KeyboardInterrupt

    monkeypatch.setattr(ft, "ProgressCallback", Killed)


def _saved_steps(out: Path) -> list[int]:
    return sorted(int(p.parent.name.removeprefix("checkpoint-"))
                  for p in (out / "checkpoints").glob("checkpoint-*/trainer_state.json"))


def test_the_cli_resumes_a_stopped_run_only_with_resume(enc, tmp_path, monkeypatch):
    from chuishao.transformer.cli import app

    args = ["finetune", str(enc), str(MINI), "--max-steps", "6", "--batch-size", "4", "--max-length", "48",
            "--lr", "1e-3", "--dev-fraction", "0.2", "--evals-per-epoch", "3", "--patience", "10", "--threads", "1"]
    invoke = CliRunner().invoke

    def stopped(out: Path, *extra: str) -> int:
        with monkeypatch.context() as m:
            _stop_after_first_save(m)
            result = invoke(app, [*args, str(out), *extra])
        assert result.exit_code == 130 and "[done]" not in result.output, result.output  # Ctrl-C's status
        saved = _saved_steps(out)
        assert len(saved) == 1 and 0 < saved[0] < 6, saved
        return saved[0]

    out = tmp_path / "fresh"
    stopped(out)
    fresh = invoke(app, [*args, str(out)])  # no --resume: the stopped run's checkpoints are dropped, step 0 again
    assert fresh.exit_code == 0, fresh.output
    assert "[resume]" not in fresh.output
    meta = json.loads((out / "chuishao_transformer.json").read_text(encoding="utf-8"))
    assert meta["resumed_from_step"] is None and meta["global_step"] == 6 and meta["config"]["resume"] is False

    out = tmp_path / "resumed"
    step = stopped(out, "--resume")
    resumed = invoke(app, [*args, str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"(step {step})" in resumed.output and "[resume] from" in resumed.output
    meta = json.loads((out / "chuishao_transformer.json").read_text(encoding="utf-8"))
    assert meta["resumed_from_step"] == step and meta["global_step"] == 6 and meta["config"]["resume"] is True


def test_a_resumed_runs_train_seconds_count_the_part_before_the_stop(enc, tmp_path, monkeypatch):
    from chuishao.transformer.finetune import TRAIN_CLOCK_FILE, FinetuneConfig, finetune

    out = tmp_path / "ft"
    cfg = FinetuneConfig(model_dir=str(enc), train=str(MINI), out_dir=str(out), max_steps=6, batch_size=4,
                         max_length=48, lr=1e-3, threads=1, dev_fraction=0.2, evals_per_epoch=3, patience=10,
                         resume=True)
    with monkeypatch.context() as m:
        _stop_after_first_save(m)
        with pytest.raises(KeyboardInterrupt):
            finetune(cfg)
    (step,) = _saved_steps(out)
    clock = out / "checkpoints" / f"checkpoint-{step}" / TRAIN_CLOCK_FILE
    first = json.loads(clock.read_text(encoding="utf-8"))
    assert first["global_step"] == step and 0 < first["train_seconds"] < 600
    # as if the first part had taken an hour: the resumed run goes on from the seconds its checkpoint recorded
    clock.write_text(json.dumps({"global_step": step, "train_seconds": 3600.0}), encoding="utf-8")
    summary = finetune(cfg)
    assert summary["resumed_from_step"] == step and summary["global_step"] == 6
    assert 3600.0 <= summary["train_seconds"] < 3600.0 + 600
    later = [json.loads((out / "checkpoints" / f"checkpoint-{s}" / TRAIN_CLOCK_FILE).read_text(encoding="utf-8"))
             for s in _saved_steps(out) if s > step]
    assert later and all(c["train_seconds"] >= 3600.0 for c in later)

    # a checkpoint without the record (an older version's) resumes from 0 seconds: only the resumed part counts
    fresh_out = tmp_path / "old"
    cfg.out_dir = str(fresh_out)
    with monkeypatch.context() as m:
        _stop_after_first_save(m)
        with pytest.raises(KeyboardInterrupt):
            finetune(cfg)
    (step,) = _saved_steps(fresh_out)
    (fresh_out / "checkpoints" / f"checkpoint-{step}" / TRAIN_CLOCK_FILE).unlink()
    summary = finetune(cfg)
    assert summary["resumed_from_step"] == step and 0 <= summary["train_seconds"] < 600
