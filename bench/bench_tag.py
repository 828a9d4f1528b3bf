r"""Batch tagging figures (issue #4): throughput and memory, kill/resume, Spark parity.

    python bench/bench_tag.py make-data --corpus /work/shared/data/corpus.jsonl --rows 1000000 -o /tmp/b/1m.parquet
    python bench/bench_tag.py throughput /tmp/b/1m.parquet --model /tmp/chuishao-model --workers 2
    python bench/bench_tag.py throughput /tmp/b/100k.jsonl --model /tmp/chuishao-model -o /tmp/b/100k.out.jsonl \
        --name throughput_100k_w2
    python bench/bench_tag.py resume --corpus /work/shared/data/corpus.jsonl --rows 200000 --model /tmp/chuishao-model
    python bench/bench_tag.py spark /tmp/b/1m.parquet --model /tmp/chuishao-model --reference /tmp/b/1m.out.parquet

Each prints its figures and writes them to bench/results/tag_<name>.json. Synthetic rows are
corpus messages recombined (a title from one, the text of another, new ids), with 0.2% bad rows
(empty, English-only) so the error path is timed too. The corpus is read at run time, never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _save(name: str, figures: dict) -> None:
    figures = {**figures, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                      "load_avg_at_end": os.getloadavg()}, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"tag_{name}.json").write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(figures, ensure_ascii=False))


# ---- data -------------------------------------------------------------------------------
def synthetic_rows(corpus: Path, rows: int, seed: int = 7):
    msgs = [json.loads(line) for line in corpus.open(encoding="utf-8") if line.strip()]
    msgs = [m for m in msgs if isinstance(m.get("text"), str)]
    rng = random.Random(seed)
    for i in range(rows):
        a, b = rng.choice(msgs), rng.choice(msgs)
        text = b["text"]
        if rng.random() < 0.002:
            text = rng.choice(["", "Only English words here"])
        yield {"id": f"s{i:08d}", "title": a.get("title") or "", "text": text, "source": "synthetic"}


def make_data(corpus: Path, rows: int, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with pq.ParquetWriter(out, pa.schema([(c, pa.string()) for c in ("id", "title", "text", "source")])) as w:
            buf = []
            for rec in synthetic_rows(corpus, rows):
                buf.append(rec)
                if len(buf) == 50_000:
                    w.write_table(pa.Table.from_pylist(buf, schema=w.schema))
                    buf = []
            if buf:
                w.write_table(pa.Table.from_pylist(buf, schema=w.schema))
    else:
        with out.open("w", encoding="utf-8") as fh:
            for rec in synthetic_rows(corpus, rows):
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{rows} rows -> {out} ({out.stat().st_size / 1e6:.0f} MB)")


# ---- memory of a process tree -------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                todo.extend(int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split())
        except OSError:
            pass
    return out


def _mem_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory(threading.Thread):
    """Peak of the summed PSS (shared pages counted once) and summed RSS of a process and its children."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_pss, self.peak_rss, self.stop = pid, 0, 0, False

    def run(self) -> None:
        while not self.stop:
            pids = _tree(self.pid)
            self.peak_pss = max(self.peak_pss, sum(_mem_kb(p, "Pss") for p in pids))
            self.peak_rss = max(self.peak_rss, sum(_mem_kb(p, "Rss") for p in pids))
            # Reading smaps of ~700 MB processes is kernel work: every 0.25 s it took a quarter of
            # a core from the run it measures. Memory is flat over a run, so once a second is enough.
            time.sleep(1.0)


def _machine_busy_seconds() -> float:
    """CPU seconds all processes on this machine have used (and the hypervisor has stolen) since boot."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return float("nan")
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_tag(args: list[str]) -> tuple[int, float, TreeMemory, str]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "chuishao.cli", "tag", *args], stderr=subprocess.PIPE, text=True)
    mem = TreeMemory(proc.pid)
    mem.start()
    _, err = proc.communicate()
    mem.stop = True
    mem.join()
    return proc.returncode, time.perf_counter() - start, mem, err


def _summary(stderr: str) -> dict:
    for line in reversed(stderr.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"no summary in output:\n{stderr[-3000:]}")


def cpu_calibration() -> float:
    """Seconds for a fixed pure-Python loop (best of 3). The development VM's speed drifts (the
    same run has been 1.6x slower an hour later); this puts each throughput figure next to the
    speed of the CPU it got. It tracks the drift only roughly: see cpu_seconds_run too."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.process_time() - start)
    return round(best, 3)


# ---- figures ----------------------------------------------------------------------------
def throughput(data: Path, model: str, workers: int, out: Path, name: str | None = None) -> None:
    calibration_before = cpu_calibration()
    busy_before, ours_before = _machine_busy_seconds(), _cpu_seconds(resource.RUSAGE_CHILDREN)
    sampler_before = _cpu_seconds(resource.RUSAGE_SELF)
    rc, seconds, mem, err = run_tag([str(data), "-o", str(out), "--model", model, "--workers", str(workers), "--no-progress"])
    if rc:
        raise SystemExit(err[-3000:])
    s = _summary(err)
    ours = _cpu_seconds(resource.RUSAGE_CHILDREN) - ours_before
    sampler = _cpu_seconds(resource.RUSAGE_SELF) - sampler_before
    # The VM's throughput drifts with what else runs on it: record the CPU the rest of the machine
    # took during the run (other processes, hypervisor steal), so a slow figure can be told apart.
    others = max(0.0, _machine_busy_seconds() - busy_before - ours - sampler)
    calibration = [calibration_before, cpu_calibration()]
    _save(name or f"throughput_w{workers}", {
        "rows": s["rows"], "tagged": s["tagged"], "errors": s["errors"], "workers": workers,
        "wall_seconds_incl_model_load": round(seconds, 1), "rows_per_second": round(s["rows"] / seconds, 1),
        "rows_per_second_reported": s["rows_per_second"],
        "peak_pss_mb_tree": round(mem.peak_pss / 1024), "peak_rss_mb_tree_sum": round(mem.peak_rss / 1024),
        "cpu_seconds_run": round(ours, 1), "cpu_seconds_memory_sampler": round(sampler, 1),
        "cpu_seconds_other_processes": round(others, 1),
        "cpu_calibration_loop_seconds_before_after": calibration, "input": str(data), "output": str(out)})


def _table(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(x) for x in path.open(encoding="utf-8")]
    import pyarrow.dataset as ds

    return sorted(ds.dataset(path).to_table().to_pylist(), key=lambda r: r["row"])


def resume(corpus: Path, rows: int, model: str, kills: int, workdir: Path, seed: int, chunk_size: int) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / f"resume-{rows}.jsonl"
    if not data.exists():
        make_data(corpus, rows, data)
    ref, out = workdir / "resume-ref.jsonl", workdir / "resume-out.jsonl"
    base = ["--model", model, "--workers", "2", "--no-progress", "--chunk-size", str(chunk_size)]
    rc, _, _, err = run_tag([str(data), "-o", str(ref), *base])
    if rc:
        raise SystemExit(err[-3000:])
    rng = random.Random(seed)
    out.unlink(missing_ok=True)
    log = []
    partial = workdir / ".resume-out.jsonl.partial"
    n_chunks = -(-rows // chunk_size)
    for k in range(kills):
        # Kill at a random point: after a random number of further chunks, then a random part of the next.
        before = len(list(partial.glob("chunk-*.jsonl"))) if k else 0
        target = min(n_chunks - 1, before + rng.randint(1, max(1, n_chunks // (kills + 1))))
        cmd = [sys.executable, "-m", "chuishao.cli", "tag", str(data), "-o", str(out), *base] + (["--resume"] if k else [])
        proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True)
        started = time.monotonic()
        while len(list(partial.glob("chunk-*.jsonl"))) < target and proc.poll() is None:
            time.sleep(0.02)
        extra = rng.uniform(0, 2.0)
        time.sleep(extra)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole tree, workers included: as abrupt as it gets
        proc.wait()
        chunks = len(list(partial.glob("chunk-*.jsonl"))) if partial.exists() else 0
        log.append({"kill": k + 1, "after_seconds": round(time.monotonic() - started, 1), "chunks_kept": chunks,
                    "leftover_tmp_files": len(list(partial.glob("*.tmp"))), "output_exists": out.exists()})
    rc, _, _, err = run_tag([str(data), "-o", str(out), *base, "--resume"])
    if rc:
        raise SystemExit(err[-3000:])
    a, b = ref.read_bytes(), out.read_bytes()
    ra, rb = _table(ref), _table(out)
    _save("resume", {"rows": rows, "chunk_size": chunk_size, "kills": log, "final_summary": _summary(err),
                     "identical_bytes": a == b, "rows_ref": len(ra), "rows_resumed": len(rb),
                     "rows_equal": ra == rb, "row_numbers_ok": [r["row"] for r in rb] == list(range(1, rows + 1))})


def spark(data: Path, model: str, reference: Path, out: Path, master: str) -> None:
    rc, seconds, _, err = run_tag([str(data), "-o", str(out), "--model", model, "--engine", "spark",
                                     "--spark-master", master])
    if rc:
        raise SystemExit(err[-3000:])
    a, b = _table(reference), _table(out)
    diff = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    _save("spark", {"rows_local": len(a), "rows_spark": len(b), "identical": a == b, "first_difference": diff,
                    "master": master, "wall_seconds": round(seconds, 1), "rows_per_second": round(len(b) / seconds, 1),
                    "summary": _summary(err)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data")
    m.add_argument("--corpus", type=Path, required=True)
    m.add_argument("--rows", type=int, default=1_000_000)
    m.add_argument("-o", type=Path, required=True)
    t = sub.add_parser("throughput")
    t.add_argument("data", type=Path)
    t.add_argument("--model", required=True)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("-o", type=Path, default=None)
    t.add_argument("--name", default=None, help="results file: bench/results/tag_NAME.json (default throughput_wN)")
    r = sub.add_parser("resume")
    r.add_argument("--corpus", type=Path, required=True)
    r.add_argument("--rows", type=int, default=200_000)
    r.add_argument("--model", required=True)
    r.add_argument("--kills", type=int, default=5)
    r.add_argument("--seed", type=int, default=4)
    r.add_argument("--chunk-size", type=int, default=5000)
    r.add_argument("--workdir", type=Path, default=Path("/tmp/chuishao-bench"))
    s = sub.add_parser("spark")
    s.add_argument("data", type=Path)
    s.add_argument("--model", required=True)
    s.add_argument("--reference", type=Path, required=True, help="the local engine's Parquet output for the same data")
    s.add_argument("-o", type=Path, default=None)
    s.add_argument("--master", default="local[2]")
    a = ap.parse_args()
    if a.cmd == "make-data":
        make_data(a.corpus, a.rows, a.o)
    elif a.cmd == "throughput":
        throughput(a.data, a.model, a.workers, a.o or a.data.with_suffix(".out.parquet"), a.name)
    elif a.cmd == "resume":
        resume(a.corpus, a.rows, a.model, a.kills, a.workdir, a.seed, a.chunk_size)
    else:
        spark(a.data, a.model, a.reference, a.o or a.data.with_suffix(".spark.parquet"), a.master)


if __name__ == "__main__":
    main()
