"""chuishao.transformer.finetune on a tiny random encoder: a stopped run resumes from its last checkpoint (only a run
of the same settings on the same files; `chuishao transformer finetune --resume` refuses another's), a resumed run's
train_seconds counts the whole training, and bad inputs are one-line errors before any output folder exists."""

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


def _saved_steps(out: Path) -> list[int]:
    return sorted(int(p.parent.name.removeprefix("checkpoint-"))
                  for p in (out / "checkpoints").glob("checkpoint-*/trainer_state.json"))


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


def test_a_checkpoint_of_other_settings_or_files_is_not_resumed(enc, tmp_path, monkeypatch, capsys):
    """The library's (the cascade recipe's) resume starts over on a run of other settings, and says so."""
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
        capsys.readouterr()
        summary = finetune(_cfg(enc, out, train=str(data), **change))
        assert summary["resumed_from_step"] is None and summary["global_step"] == 6, change
        said = capsys.readouterr().out
        if change.get("resume") is False:
            assert "[start over]" not in said
        else:
            assert "[start over]" in said and ("(lr)" if change else "(inputs: train.jsonl)") in said, said


def test_a_resumed_runs_train_seconds_count_the_part_before_the_stop(enc, tmp_path, monkeypatch, capsys):
    """The seconds trained so far are part of each checkpoint's trainer_state.json (the Trainer's callback state),
    not a file written after it; a checkpoint without them (an older version's) says so."""
    from chuishao.transformer.finetune import finetune

    def stopped(out: Path) -> tuple[int, Path, dict]:
        with monkeypatch.context() as m:
            _stop_after_first_save(m)
            with pytest.raises(KeyboardInterrupt):
                finetune(_cfg(enc, out))
        (step,) = _saved_steps(out)
        state_file = out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json"
        return step, state_file, json.loads(state_file.read_text(encoding="utf-8"))

    out = tmp_path / "ft"
    step, state_file, state = stopped(out)
    assert 0 < state["stateful_callbacks"]["TrainClockCallback"]["args"]["before"] < 600
    assert sorted(p.name for p in state_file.parent.iterdir() if "second" in p.name) == []  # no separate clock file
    # as if the first part had taken an hour: the resumed run goes on from the seconds its checkpoint holds
    state["stateful_callbacks"]["TrainClockCallback"]["args"]["before"] = 3600.0
    state_file.write_text(json.dumps(state), encoding="utf-8")
    capsys.readouterr()
    summary = finetune(_cfg(enc, out))
    assert "min trained)" in capsys.readouterr().out
    assert summary["resumed_from_step"] == step and summary["global_step"] == 6
    assert summary["train_seconds_before_resume"] == 3600.0 and 3600.0 <= summary["train_seconds"] < 3600.0 + 600
    later = [json.loads((out / "checkpoints" / f"checkpoint-{s}" / "trainer_state.json").read_text(encoding="utf-8"))
             for s in _saved_steps(out) if s > step]
    assert later and all(st["stateful_callbacks"]["TrainClockCallback"]["args"]["before"] >= 3600.0 for st in later)

    # a checkpoint without the clock state (an older version's) resumes, saves on, and says what train_seconds counts
    out = tmp_path / "old"
    step, state_file, state = stopped(out)
    del state["stateful_callbacks"]["TrainClockCallback"]
    state_file.write_text(json.dumps(state), encoding="utf-8")
    capsys.readouterr()
    summary = finetune(_cfg(enc, out))
    assert f"no time record: train_seconds counts from step {step}" in capsys.readouterr().out
    assert summary["resumed_from_step"] == step and summary["global_step"] == 6
    assert summary["train_seconds_before_resume"] is None and 0 <= summary["train_seconds"] < 600
    assert finetune(_cfg(enc, tmp_path / "fresh", resume=False))["train_seconds_before_resume"] == 0.0


def _cli(*args: str):
    from chuishao.transformer.cli import app

    return CliRunner().invoke(app, ["finetune", *args, "--threads", "1"])


# _cfg's settings as options
CLI_SETTINGS = ("--max-steps", "6", "--batch-size", "4", "--max-length", "48", "--lr", "1e-3", "--dev-fraction", "0.2",
                "--evals-per-epoch", "3", "--patience", "10")


def _cli_stopped(monkeypatch, *args: str) -> int:
    """Run the CLI with ``args`` killed after its first checkpoint; the checkpoint's step."""
    with monkeypatch.context() as m:
        _stop_after_first_save(m)
        result = _cli(*args)
    assert result.exit_code == 130 and "[done]" not in result.output, result.output  # Ctrl-C's status
    saved = _saved_steps(Path(args[2]))
    assert len(saved) == 1 and 0 < saved[0] < 6, saved
    return saved[0]


def test_the_cli_starts_over_without_resume(enc, tmp_path, monkeypatch):
    out = tmp_path / "fresh"
    _cli_stopped(monkeypatch, str(enc), str(MINI), str(out), *CLI_SETTINGS)
    fresh = _cli(str(enc), str(MINI), str(out), *CLI_SETTINGS)  # no --resume: the checkpoints are dropped, step 0
    assert fresh.exit_code == 0, fresh.output
    assert "[resume]" not in fresh.output
    meta = json.loads((out / "chuishao_transformer.json").read_text(encoding="utf-8"))
    assert meta["resumed_from_step"] is None and meta["global_step"] == 6 and meta["config"]["resume"] is False


def test_the_cli_resumes_only_a_run_of_the_same_settings_and_files(enc, tmp_path, monkeypatch):
    data, out = tmp_path / "train.jsonl", tmp_path / "resumed"
    data.write_text(MINI.read_text(encoding="utf-8"), encoding="utf-8")
    step = _cli_stopped(monkeypatch, str(enc), str(data), str(out), *CLI_SETTINGS, "--resume")
    # another run's checkpoints are neither resumed nor removed: one line says what differs
    refused = _cli(str(enc), str(data), str(out), *CLI_SETTINGS, "--resume", "--lr", "2e-3", "--seed", "1")
    assert refused.exit_code == 2 and "Traceback" not in refused.output, refused.output
    assert "(lr, seed)" in refused.output and "without --resume" in refused.output, refused.output
    data.write_text(MINI.read_text(encoding="utf-8").replace('"W13"', '"W10"'), encoding="utf-8")
    refused = _cli(str(enc), str(data), str(out), *CLI_SETTINGS, "--resume")
    assert refused.exit_code == 2 and "(inputs: train.jsonl)" in refused.output, refused.output
    assert _saved_steps(out) == [step]
    data.write_text(MINI.read_text(encoding="utf-8"), encoding="utf-8")
    resumed = _cli(str(enc), str(data), str(out), *CLI_SETTINGS, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"(step {step}," in resumed.output and "[resume] from" in resumed.output
    meta = json.loads((out / "chuishao_transformer.json").read_text(encoding="utf-8"))
    assert meta["resumed_from_step"] == step and meta["global_step"] == 6 and meta["config"]["resume"] is True


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
