"""The local batch engine: formats, workers, kept columns, interruptions and --resume."""

from __future__ import annotations

import csv
import ctypes
import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chuishao.batch import TagInterrupted, TagOptions, tag_file
from chuishao.batch.workdir import WorkDir, workdir_for
from chuishao.cli import app
from chuishao.errors import DataError
from chuishao.io.records import FieldMap

runner = CliRunner()
TEXTS = ["小区停水三天没人管", "楼下烧烤店油烟很大熏得开不了窗", "路口下水道堵塞一下雨就积水", "物业不管电梯坏了一个月",
         "工地夜间施工噪音扰民", "路灯坏了晚上很黑"]


def _messages(n: int) -> list[dict]:
    rows = [{"id": f"m{i}", "title": "", "text": TEXTS[i % len(TEXTS)] + "，" + str(i), "区": "朝阳"} for i in range(n)]
    rows[3]["text"] = ""  # bad rows must come out too
    rows[5] = {"id": "m5", "body": "no text"}
    return rows


def _write_jsonl(path: Path, rows: list[dict], broken_line: bool = True) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if broken_line:
        lines.insert(7, "{broken")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_every_row_out_in_order_with_small_chunks(tiny_model, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(40))
    out = tmp_path / "out.jsonl"
    summary = tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=7, batch_size=3))
    rows = _read_jsonl(out)
    assert [r["row"] for r in rows] == list(range(1, 42))
    assert summary.rows == 41 and summary.errors == 3 and summary.tagged == 38
    assert sum(summary.topics.values()) == summary.tagged
    assert rows[7]["error"] and "broken JSON" in rows[7]["error"]
    assert not workdir_for(out).exists()


def test_workers_give_the_same_output_as_one_process(tiny_model, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(60))
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    tag_file(tiny_model, src, one, options=TagOptions(fields=FieldMap(), chunk_size=9))
    tag_file(tiny_model, src, two, options=TagOptions(fields=FieldMap(), chunk_size=9, workers=2))
    assert one.read_bytes() == two.read_bytes()


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".xlsx"])
def test_output_format_follows_the_extension(tiny_model, tmp_path, suffix):
    pytest.importorskip("pyarrow" if suffix == ".parquet" else "openpyxl" if suffix == ".xlsx" else "csv")
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(12))
    ref, out = tmp_path / "ref.jsonl", tmp_path / f"out{suffix}"
    opts = TagOptions(fields=FieldMap(), keep_columns=True, chunk_size=5)
    tag_file(tiny_model, src, ref, options=opts)
    tag_file(tiny_model, src, out, options=opts)
    expected = _read_jsonl(ref)
    if suffix in (".csv", ".tsv"):
        # .csv starts with a UTF-8 byte-order mark (Excel reads it as UTF-8 then), .tsv does not
        assert out.read_bytes().startswith(b"\xef\xbb\xbfid,") if suffix == ".csv" else out.read_bytes()[:3] == b"id\t"
        with out.open(encoding="utf-8-sig", newline="") as fh:
            got = list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
        assert json.loads(got[0]["top"]) == expected[0]["top"]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        got = pq.read_table(out).to_pylist()
        assert got[0]["top"] == expected[0]["top"] and got[0]["departments"] == expected[0]["departments"]
    else:
        import openpyxl

        ws = openpyxl.load_workbook(out, read_only=True).worksheets[0]
        values = list(ws.iter_rows(values_only=True))
        got = [dict(zip(values[0], v, strict=False)) for v in values[1:]]  # read-only rows stop at their last cell
        assert [g["needs_review"] for g in got] == [e["needs_review"] for e in expected]  # booleans, not text
    assert len(got) == len(expected) == 13
    assert [str(g["id"]) for g in got] == [e["id"] for e in expected]
    assert [g["topic"] or None for g in got] == [e["topic"] for e in expected]
    assert [g.get("区") for g in got[:3]] == ["朝阳"] * 3
    assert got[0]["input_id"] == "m0"  # kept column renamed: `id` is ours
    # the departments flat too, right after the nested column
    names = list(got[0])
    assert names[names.index("departments") + 1:names.index("departments") + 3] == ["lead_department", "assist_departments"]
    for g, e in zip(got, expected, strict=True):
        assert (g["lead_department"] or None) == e["departments"]["lead"]
        assert (g["assist_departments"] or "") == "、".join(e["departments"]["assist"])


def test_csv_output_without_bom_when_the_encoding_is_given(tiny_model, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(8))
    out = tmp_path / "out.csv"
    tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), output_encoding="utf-8"))
    assert out.read_bytes().startswith(b"id,")


def test_keep_columns_carries_json_values_through(tiny_model, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", [{"id": 7, "text": "小区停水", "n": 3, "tags": ["a"]}], broken_line=False)
    out = tmp_path / "out.jsonl"
    tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), keep_columns=True))
    row = _read_jsonl(out)[0]
    assert row["id"] == "7" and row["input_id"] == 7 and row["n"] == 3 and row["tags"] == ["a"] and row["text"] == "小区停水"


def test_kept_columns_never_collide(tiny_model, tmp_path):
    """`id` is ours, so the input's becomes input_id; an input_id of the input must not be overwritten."""
    src = _write_jsonl(tmp_path / "in.jsonl", [{"id": "ORIG-1", "input_id": "X-9", "text": "小区停水"}], broken_line=False)
    out = tmp_path / "out.jsonl"
    tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(id="input_id"), keep_columns=True))
    row = _read_jsonl(out)[0]
    assert (row["id"], row["input_id"], row["input_input_id"]) == ("X-9", "ORIG-1", "X-9")


def test_disk_full_then_resume_loses_and_duplicates_nothing(tiny_model, tmp_path, monkeypatch):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(50))
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    opts = TagOptions(fields=FieldMap(), chunk_size=6)
    tag_file(tiny_model, src, ref, options=opts)
    real_write, calls = WorkDir.write_chunk, []

    def full_disk(self, index, lines, summary):
        calls.append(index)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, index, lines, summary)

    monkeypatch.setattr(WorkDir, "write_chunk", full_disk)
    with pytest.raises(TagInterrupted, match="--resume") as info:
        tag_file(tiny_model, src, out, options=opts)
    assert info.value.done_rows == 18 and not out.exists()
    assert not list(tmp_path.glob(".out.jsonl.*.part"))
    monkeypatch.setattr(WorkDir, "write_chunk", real_write)
    resumed = tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=6, resume=True))
    assert out.read_bytes() == ref.read_bytes()
    assert resumed.rows == 51 and resumed.resumed_rows == 18 and resumed.errors == 3


def test_disk_full_at_the_join_names_the_path_and_keeps_the_chunks(tiny_model, tmp_path, monkeypatch):
    import chuishao.batch.local as local

    src = _write_jsonl(tmp_path / "in.jsonl", _messages(20))
    out = tmp_path / "out.csv"
    opts = TagOptions(fields=FieldMap(), chunk_size=6)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_write = local.write_output
    monkeypatch.setattr(local, "write_output", full_disk)
    with pytest.raises(TagInterrupted) as info:
        tag_file(tiny_model, src, out, options=opts)
    message = str(info.value)
    assert f"disk holding {tmp_path} is full" in message and str(out) in message and "--resume" in message
    assert str(workdir_for(out)) in message and WorkDir(workdir_for(out)).done_chunks()
    assert not out.exists() and not list(tmp_path.glob(".out.csv.*.part"))
    monkeypatch.setattr(local, "write_output", real_write)
    resumed = tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=6, resume=True))
    assert resumed.resumed_rows == resumed.rows == 21 and out.exists()


@pytest.mark.parametrize("resume", [True, False])
def test_a_part_left_by_a_run_killed_while_joining_is_removed(tiny_model, tmp_path, monkeypatch, resume):
    import chuishao.batch.local as local

    src = _write_jsonl(tmp_path / "in.jsonl", _messages(20))
    out = tmp_path / "out.jsonl"
    if resume:  # a run that finished every chunk and was killed while joining them
        real_finish = local._finish

        def killed(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(local, "_finish", killed)
        with pytest.raises(TagInterrupted):
            tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=6))
        monkeypatch.setattr(local, "_finish", real_finish)
    stale = tmp_path / ".out.jsonl.k2x_9abc.part"  # the name tempfile.mkstemp gave the killed run's join
    stale.write_text('{"half": ', encoding="utf-8")
    unrelated = tmp_path / ".out.jsonl.notes.part.txt"
    unrelated.write_text("mine", encoding="utf-8")
    summary = tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=6, resume=resume))
    assert out.exists() and not stale.exists() and unrelated.exists()
    assert summary.resumed_rows == (21 if resume else 0)


def test_resume_refuses_a_changed_input(tiny_model, tmp_path, monkeypatch):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(20))
    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(WorkDir, "write_chunk", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # nothing finished: nothing kept
        tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=5))
    assert not workdir_for(out).exists()
    monkeypatch.undo()
    wd = WorkDir(workdir_for(out))
    wd.start({"input": str(src.resolve()), "input_size": 1, "input_mtime_ns": 1}, resume=False)
    with pytest.raises(DataError, match=r"cannot resume: .*input_size"):
        tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), resume=True))


def test_model_exception_fails_only_its_row(tiny_model, tmp_path, monkeypatch):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(10), broken_line=False)
    real_route = type(tiny_model).route_dicts

    def fragile(self, texts, *, titles=None, ids=None):
        if any("，4" in t for t in texts):
            raise ValueError("boom")
        return real_route(self, texts, titles=titles, ids=ids)

    monkeypatch.setattr(type(tiny_model), "route_dicts", fragile)
    out = tmp_path / "out.jsonl"
    summary = tag_file(tiny_model, src, out)
    rows = _read_jsonl(out)
    assert len(rows) == 10 and "model failed (ValueError: boom)" in rows[4]["error"]
    assert [r["error"] is None for r in rows].count(True) == 7 and summary.errors == 3  # + empty text, no text


def _interruptible_run(tiny_model_dir: Path, tmp_path: Path, rows: int, chunk_size: int, chunks_first: int):
    """The CLI command for a 2-worker run, the reference output of an uninterrupted run, and a
    second run (its own process group, stderr piped) once ``chunks_first`` chunks are on disk."""
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(rows))
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    base = [sys.executable, "-m", "chuishao.cli", "tag", str(src), "--model", str(tiny_model_dir), "--chunk-size",
            str(chunk_size), "--workers", "2", "--no-progress"]
    subprocess.run([*base, "-o", str(ref)], check=True, capture_output=True)
    # as from a terminal: SIGINT handled (a test runner's worker may ignore it, and an ignored signal is inherited)
    proc = subprocess.Popen([*base, "-o", str(out)], stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial, deadline = workdir_for(out), time.monotonic() + 120
    while len(list(partial.glob("chunk-*.jsonl"))) < chunks_first and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    return base, ref, out, proc


@pytest.mark.processes
def test_kill_9_and_resume_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    base, ref, out, proc = _interruptible_run(tiny_model_dir, tmp_path, 6000, 40, 5)
    partial = workdir_for(out)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed: make the input bigger"
    kept = len(list(partial.glob("chunk-*.jsonl")))
    done = subprocess.run([*base, "-o", str(out), "--resume"], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == ref.read_bytes()
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    assert summary["rows"] == 6001 and summary["resumed_rows"] == kept * 40


def test_cli_progress_only_when_asked_off_a_terminal(tiny_model_dir, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(30))
    quiet = runner.invoke(app, ["tag", str(src), "-o", str(tmp_path / "a.jsonl"), "--model", str(tiny_model_dir)])
    assert quiet.exit_code == 0 and "rows/s" not in quiet.output and "it/s" not in quiet.output
    assert json.loads(quiet.output.strip().splitlines()[-1])["rows"] == 31
    loud = runner.invoke(app, ["tag", str(src), "-o", str(tmp_path / "b.jsonl"), "--model", str(tiny_model_dir), "--progress"])
    assert loud.exit_code == 0 and "100%" in loud.output and "rows/s" in loud.output


def test_gbk_csv_in_gbk_csv_out(tiny_model_dir, tmp_path):
    src = tmp_path / "in.csv"
    with src.open("w", encoding="gbk", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["编号", "内容"])
        w.writerows([["1", "小区停水三天"], ["2", "路灯坏了晚上很黑"]])
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--id-field", "编号",
                                 "--text-field", "内容", "--title-field", "", "--keep-columns", "--output-encoding", "gbk"])
    assert result.exit_code == 0, result.output
    with out.open(encoding="gbk", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["id"], r["内容"], r["error"]) for r in rows] == [("1", "小区停水三天", ""), ("2", "路灯坏了晚上很黑", "")]


@pytest.mark.parametrize("keep_columns,kept_as_text", [(False, False), (True, False), (True, True)])
def test_output_line_is_output_record_as_json(keep_columns, kept_as_text):
    from chuishao.batch.rows import output_line, output_record
    from chuishao.io.records import InputRecord
    from chuishao.models.answer import RoutingAnswer

    answer = RoutingAnswer(id="a1", topic="W05", topic_name="噪声扰民", confidence=0.8123, needs_review=False,
                           top=[{"topic": "W05", "topic_name": "噪声扰民", "score": 0.8123}],
                           departments={"lead": "生态环境局", "assist": ["公安分局(派出所)"]}, evidence=["噪音", "夜间"])
    rec = InputRecord(row=7, id="a1", text="晚上施工噪音", fields={"id": "a1", "n": 3, "tags": ["x"], "备注": None})
    line = output_line(rec, answer.model_dump(), keep_columns, kept_as_text)
    assert line.endswith("\n") and line.count("\n") == 1
    record = output_record(rec, answer.model_dump(), keep_columns, kept_as_text)
    assert json.loads(line) == record
    assert list(record)[: len(answer.model_dump()) + 1] == [*answer.model_dump(), "row"]


# ---- damaged checkpoints and orphaned workers ---------------------------------------------------
def _interrupted(model, src: Path, out: Path, monkeypatch, chunks_done: int = 3, chunk_size: int = 6) -> WorkDir:
    """A run stopped (as by Ctrl-C) after ``chunks_done`` chunks, its checkpoint kept for --resume."""
    real_write, calls = WorkDir.write_chunk, []

    def stop(self, index, lines, summary):
        calls.append(index)
        if len(calls) > chunks_done:
            raise KeyboardInterrupt()
        real_write(self, index, lines, summary)

    with monkeypatch.context() as m:
        m.setattr(WorkDir, "write_chunk", stop)
        with pytest.raises(TagInterrupted):
            tag_file(model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=chunk_size))
    return WorkDir(workdir_for(out))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])  # a copy cut short: mid-line, mid-character


def _append_line(path: Path) -> None:
    path.write_bytes(path.read_bytes() + path.read_bytes().splitlines(keepends=True)[0])


def _rewrite_summary(**changes):
    def rewrite(path: Path) -> None:
        path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **changes}), encoding="utf-8")
    return rewrite


_DAMAGED_CHUNKS = {  # what a resumed run must notice and redo: (the chunk's data file or its summary, damage)
    "truncated": ("data", _truncate), "grown": ("data", _append_line), "missing": ("data", Path.unlink),
    "summary-broken": ("summary", lambda p: p.write_text("{broken")),
    "summary-list": ("summary", lambda p: p.write_text("[]")),
    "summary-garbage": ("summary", lambda p: p.write_text("garbage")),
    "summary-not-utf8": ("summary", lambda p: p.write_bytes(b"\xff\xfe")),
    "summary-no-size": ("summary", _rewrite_summary(bytes=None)),  # as an older version wrote it
    "summary-rows-text": ("summary", _rewrite_summary(rows="6")),
    "summary-rows-wrong": ("summary", _rewrite_summary(rows=5, tagged=5, errors=0)),  # fewer rows than the input has there
}


@pytest.mark.parametrize("case", list(_DAMAGED_CHUNKS))
def test_resume_redoes_a_damaged_chunk(tiny_model, tmp_path, monkeypatch, case):
    part, damage = _DAMAGED_CHUNKS[case]
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(50))
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    tag_file(tiny_model, src, ref, options=TagOptions(fields=FieldMap(), chunk_size=6))
    wd = _interrupted(tiny_model, src, out, monkeypatch)
    damage(wd.chunk_path(1) if part == "data" else wd.summary_path(0))
    resumed = tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=6, resume=True))
    assert out.read_bytes() == ref.read_bytes()
    assert resumed.rows == 51 and resumed.resumed_rows == 12 and resumed.errors == 3


@pytest.mark.parametrize("state", ["{broken", "[]", "garbage", None], ids=["broken", "list", "garbage", "chunk-size-0"])
def test_resume_from_a_damaged_state_file_is_a_clear_error(tiny_model_dir, tiny_model, tmp_path, monkeypatch, state):
    from chuishao.models.annotated import AnnotatedModel
    from chuishao.pipeline.annotate import build_annotator

    tiny_model = AnnotatedModel(tiny_model, build_annotator(None))  # as the CLI below loads it
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(50))
    out = tmp_path / "out.jsonl"
    wd = _interrupted(tiny_model, src, out, monkeypatch)
    state_file = wd.path / "state.json"
    if state is None:  # valid JSON, the same run, but a chunk size no run could have
        _rewrite_summary(chunk_size=0)(state_file)
    else:
        state_file.write_text(state)
    with pytest.raises(DataError, match=r"checkpoint in .*\.out\.jsonl\.partial is damaged .*run without --resume"):
        tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=6, resume=True))
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--resume"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = (f"chuishao: error: cannot resume: the checkpoint in {wd.path} is damaged (state.json is not a run's "
               f"state); run without --resume to start over, or remove {wd.path}")
    assert result.output.strip().splitlines() == [message]
    assert wd.path.is_dir() and not out.exists()  # nothing removed behind the user's back


def _running_children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]  # the name before ")" may hold spaces
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
        if int(ppid) == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.processes
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_workers_die_with_a_killed_parent(tiny_model_dir, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(6000))
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "chuishao.cli", "tag", str(src), "-o", str(out), "--model",
                             str(tiny_model_dir), "--chunk-size", "20", "--workers", "2", "--no-progress"],
                            stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = _running_children(proc.pid)
            time.sleep(0.01)
        assert len(workers) == 2, "the workers never started"
        proc.kill()
        proc.wait()
        assert not out.exists(), "the run finished before it could be killed: make the input bigger"
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if _alive(w)], "workers outlived their killed parent"
    finally:
        proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def _worker_start(parent_pid: int) -> None:
    from chuishao.batch.local import _exit_with_parent

    _exit_with_parent(parent_pid)
    libc = ctypes.CDLL(None)
    sig = ctypes.c_int(0)
    libc.prctl(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG
    os._exit(sig.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_worker_asks_for_a_signal_on_parent_death_or_exits_if_it_missed_it():
    ctx = multiprocessing.get_context("fork")
    with_parent = ctx.Process(target=_worker_start, args=(os.getpid(),))
    orphan = ctx.Process(target=_worker_start, args=(os.getpid() + 1_000_000,))  # as if the parent died first
    for p in (with_parent, orphan):
        p.start()
        p.join(10)
    assert with_parent.exitcode == signal.SIGKILL  # the signal the kernel sends when the parent dies
    assert orphan.exitcode == 1


@pytest.mark.parametrize("suffix,module", [(".parquet", "pyarrow"), (".xlsx", "openpyxl")])
def test_an_output_format_whose_library_is_missing_is_refused_before_tagging(tiny_model_dir, tmp_path, monkeypatch,
                                                                             suffix, module):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(8))
    out = tmp_path / f"out{suffix}"
    monkeypatch.setitem(sys.modules, module, None)  # as after a plain `pip install .`
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(tiny_model_dir)])
    assert result.exit_code == 2 and "pip install '.[batch]'" in result.output
    assert "Traceback" not in result.output and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@pytest.mark.processes
def test_ctrl_c_twice_stops_at_once_keeps_what_finished_and_resumes(tiny_model_dir, tmp_path):
    # big chunks: the second Ctrl-C must come while the running ones are still being finished
    base, ref, out, proc = _interruptible_run(tiny_model_dir, tmp_path, 12000, 1500, 1)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # impatient: again, while the running chunks finish
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the run hung after a second Ctrl-C")
    message = proc.stderr.read().decode()
    # 130, or killed by the second SIGINT once the first was handled: a shell shows 130 for both
    assert proc.returncode in (130, -signal.SIGINT) and "--resume" in message and "nothing kept" not in message, message
    assert "Traceback" not in message, message
    assert not out.exists(), "the run finished before it could be interrupted: make the input bigger"
    done = subprocess.run([*base, "-o", str(out), "--resume"], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == ref.read_bytes()


def test_ctrl_c_while_the_output_is_written_keeps_every_chunk(tiny_model, tmp_path, monkeypatch):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(30))
    out = tmp_path / "out.xlsx"
    opts = TagOptions(fields=FieldMap(), chunk_size=7)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("chuishao.batch.local.write_output", interrupted)
    with pytest.raises(TagInterrupted, match="stopped after 31 rows \\(Ctrl-C\\)"):
        tag_file(tiny_model, src, out, options=opts)
    monkeypatch.undo()
    assert not out.exists() and workdir_for(out).exists()
    summary = tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=7, resume=True))
    assert summary.resumed_rows == 31 and out.exists()


def test_ctrl_c_before_the_first_chunk_leaves_nothing_and_says_so(tiny_model_dir, tmp_path, monkeypatch):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(20))
    out = tmp_path / "out.jsonl"

    def interrupted_warm_up(*args):
        raise KeyboardInterrupt  # as a Ctrl-C while the workers' model warms up

    monkeypatch.setattr("chuishao.batch.local._pool", interrupted_warm_up)
    result = runner.invoke(app, ["tag", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--workers", "2"])
    assert result.exit_code == 130 and "nothing kept" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_resume_refuses_another_gazetteer_or_urgency_rules(tiny_model, tmp_path, monkeypatch):
    """They fill answer fields too: a resumed run with other ones would mix two runs' answers."""
    import yaml

    from chuishao.models.annotated import AnnotatedModel
    from chuishao.pipeline.annotate import build_annotator
    from chuishao.resources import default_gazetteer_path

    src = _write_jsonl(tmp_path / "in.jsonl", _messages(30))
    out = tmp_path / "out.jsonl"
    bundled = build_annotator(None)
    _interrupted(AnnotatedModel(tiny_model, bundled), src, out, monkeypatch)
    edited = yaml.safe_load(default_gazetteer_path().read_text(encoding="utf-8"))
    edited["version"] = str(edited.get("version")) + "-edited"
    city = tmp_path / "city.yaml"
    city.write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    for annotator in (build_annotator("none"), build_annotator(city), build_annotator(None, "none")):
        with pytest.raises(DataError, match=r"cannot resume: annotators changed"):
            tag_file(AnnotatedModel(tiny_model, annotator), src, out,
                     options=TagOptions(fields=FieldMap(), chunk_size=6, resume=True))
    summary = tag_file(AnnotatedModel(tiny_model, bundled), src, out,
                       options=TagOptions(fields=FieldMap(), chunk_size=6, resume=True))
    assert summary.resumed_rows == 18 and len(_read_jsonl(out)) == 31


@pytest.mark.processes  # a real second process, killed
def test_a_second_run_on_the_same_output_is_refused_and_leaves_the_first_alone(tiny_model, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", _messages(20))
    out = tmp_path / "out.jsonl"
    holder = subprocess.Popen(  # another process in the middle of a run on the same output
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from chuishao.batch.workdir import output_lock\n"
         f"with output_lock(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        wd = WorkDir(workdir_for(out))
        wd.start({"input": "theirs"}, resume=False)  # the other run's chunks so far
        with pytest.raises(DataError, match=r"another run is writing .*out\.jsonl now"):
            tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=5))
        assert (wd.path / "state.json").is_file() and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    summary = tag_file(tiny_model, src, out, options=TagOptions(fields=FieldMap(), chunk_size=5))  # its lock died with it
    assert summary.rows == 21 and not (tmp_path / ".out.jsonl.lock").exists()
