"""The single-machine engine: stream the input in chunks, tag them (in worker processes with
``workers`` > 1), checkpoint each chunk, and join the chunks into the output at the end."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import glob
import gzip
import multiprocessing
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from chuishao.batch.progress import progress_bar
from chuishao.batch.rows import batches, kept_columns, output_line, tag_records
from chuishao.batch.summary import TagSummary
from chuishao.batch.workdir import WorkDir, output_lock, workdir_for
from chuishao.batch.writers import write_output
from chuishao.errors import DataError
from chuishao.io.formats import delimiter_for, detect_format
from chuishao.io.records import FieldMap, InputRecord, read_records
from chuishao.io.text import AUTO
from chuishao.models.cascade import RoutingModel


@dataclass
class TagOptions:
    fields: FieldMap
    batch_size: int = 1024  # messages per model.route call
    chunk_size: int = 4_000  # rows per checkpoint and per worker task: the rows in memory scale with it
    workers: int = 1
    keep_columns: bool = False
    resume: bool = False
    encoding: str = AUTO  # input encoding (JSONL/CSV)
    output_encoding: str | None = None  # CSV/TSV output encoding; None: default_output_encoding
    sheet: str | None = None  # Excel input: the worksheet (default: the first)
    progress: bool | None = None  # None: only on a terminal


class TagInterrupted(Exception):
    """The run stopped part way; finished chunks are kept for ``--resume``."""

    def __init__(self, done_rows: int, workdir: Path, cause: BaseException) -> None:
        why = f"{type(cause).__name__}: {cause}" if str(cause) else ("Ctrl-C" if isinstance(cause, KeyboardInterrupt)
                                                                   else type(cause).__name__)
        super().__init__(f"stopped after {done_rows} rows ({why}); "
                         f"finished chunks are kept in {workdir}: run the same command with --resume to continue")
        self.done_rows = done_rows
        self.cause = cause


def render_chunk(model: RoutingModel, records: list[InputRecord], opts: TagOptions,
                 kept_as_text: bool) -> tuple[list[str], TagSummary]:
    summary = TagSummary(columns=kept_columns(records) if opts.keep_columns else [])
    lines = []
    for rec, answer in tag_records(model, records, opts.batch_size):
        summary.add(answer, rec.row)
        lines.append(output_line(rec, answer, opts.keep_columns, kept_as_text))
    return lines, summary


# ---- worker processes ------------------------------------------------------------------
_MODEL: RoutingModel | None = None
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _init_worker(model: RoutingModel, parent_pid: int) -> None:
    global _MODEL
    _exit_with_parent(parent_pid)
    _MODEL = model
    # A chunk allocates millions of short-lived, acyclic objects: collecting every 700 of them
    # (the default) costs ~5 % of a worker's time for nothing. Cycles are still collected.
    gc.set_threshold(100_000, 50, 100)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the run cleanly


def _exit_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this worker when the parent dies, kill -9 included: an orphaned worker
    would wait on its task queue for ever, holding hundreds of MB. No-op where there is no prctl."""
    if _PRCTL is not None:
        # Strictly, on the death of the thread that forked us: the pool forks its workers from the
        # thread that submits the tasks, and tag_file shuts the pool down before that thread returns.
        # SIGKILL, not SIGTERM: chunks are written atomically, so there is nothing to finish.
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # the parent died before prctl ran: no signal will come
        os._exit(1)


def _tag_chunk(index: int, records: list[InputRecord], workdir: Path, opts: TagOptions, kept_as_text: bool) -> TagSummary:
    lines, summary = render_chunk(_MODEL, records, opts, kept_as_text)  # type: ignore[arg-type]
    WorkDir(workdir).write_chunk(index, lines, summary)
    del records, lines
    _release_free_memory()
    return summary


def _release_free_memory() -> None:
    """Hand freed heap back to the OS: glibc keeps the high-water mark of every chunk otherwise."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # no C library to load (Windows)
        return None


_LIBC = _libc()
_MALLOC_TRIM = getattr(_LIBC, "malloc_trim", None)  # glibc only: not macOS, not musl
_PRCTL = getattr(_LIBC, "prctl", None) if sys.platform.startswith("linux") else None


def _pool(model: RoutingModel, workers: int) -> ProcessPoolExecutor:
    # fork: workers share the parent's loaded model pages instead of each unpickling a copy.
    # Warm it first, so the lazily built parts (segmenter dictionary, n-gram lookup tables)
    # are built once here and shared too, not rebuilt in every worker.
    model.warm_up()
    gc.collect()
    _release_free_memory()  # the model loader's freed buffers would otherwise be copied into each worker's RSS
    gc.freeze()  # keep the collector from touching (and so copying) the shared model's objects in each child
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(model, os.getpid()))


# ---- the run ---------------------------------------------------------------------------
def _state(input_path: Path, output_path: Path, model: RoutingModel, opts: TagOptions) -> dict[str, object]:
    st = input_path.stat()
    return {"input": str(input_path.resolve()), "input_size": st.st_size, "input_mtime_ns": st.st_mtime_ns,
            "output_format": detect_format(output_path), "model_version": model.version,
            "fields": [opts.fields.id, opts.fields.text, opts.fields.title], "keep_columns": opts.keep_columns,
            "encoding": opts.encoding, "sheet": opts.sheet, "chunk_size": opts.chunk_size,
            # the gazetteer and urgency rules fill answer fields too: an edited file must not mix two runs
            "annotators": annotator.fingerprints if (annotator := getattr(model, "annotator", None)) else {}}


def tag_file(model: RoutingModel, input_path: str | Path, output_path: str | Path,
             fields: FieldMap | None = None, batch_size: int = 1024, options: TagOptions | None = None) -> TagSummary:
    """Tag INPUT into OUTPUT (format by extension), one output row per input row, in input order.

    The output appears only when complete. Interrupted runs raise TagInterrupted and keep their
    finished chunks; ``options.resume`` continues from them without redoing or losing a row.
    """
    opts = options or TagOptions(fields=fields or FieldMap(), batch_size=batch_size)
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"output {output_path} would overwrite the input")
    out_fmt = detect_format(output_path)
    records = read_records(input_path, opts.fields, opts.encoding, opts.sheet)  # fails here on a missing file/column
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(output_path):  # one run per output: a second one would wipe this one's chunks
        return _run(model, records, input_path, output_path, out_fmt, opts)


def _run(model: RoutingModel, records: Iterator[InputRecord], input_path: Path, output_path: Path, out_fmt: str,
         opts: TagOptions) -> TagSummary:
    wd = WorkDir(workdir_for(output_path))
    state = wd.start(_state(input_path, output_path, model, opts), opts.resume)
    if opts.resume:
        remove_stale_parts(output_path)
    chunk_size = int(state["chunk_size"])  # a resumed run keeps the interrupted run's chunk boundaries
    done = wd.done_chunks()  # only chunks still as they were written: damaged ones are redone
    total = TagSummary()
    kept_as_text = out_fmt != "jsonl"  # typed outputs need one type per column
    bar = progress_bar(input_path, sum(s.rows for s in done.values()), opts.progress)
    pool = None
    pending: set[Future] = set()
    chunks = 0
    try:
        # inside the try: a Ctrl-C during the workers' warm-up leaves nothing behind
        pool = _pool(model, opts.workers) if opts.workers > 1 else None
        for index, chunk in enumerate(batches(records, chunk_size)):
            chunks = index + 1
            if _reuse(done.get(index), chunk, total):
                continue
            if not opts.keep_columns:
                for rec in chunk:
                    rec.fields = {}  # nothing to carry: do not ship input rows to the workers
            if pool is None:
                lines, summary = render_chunk(model, chunk, opts, kept_as_text)
                wd.write_chunk(index, lines, summary)
                total.merge(summary)
                bar.update(summary.rows)
                continue
            pending.add(pool.submit(_tag_chunk, index, chunk, wd.path, opts, kept_as_text))
            if len(pending) >= 2 * opts.workers:  # bounded memory: a few chunks in flight, no more
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                _count(finished, total, bar)
                _release_free_memory()
        _count(pending, total, bar)
        pending = set()
    except BaseException as exc:
        if pool is not None:
            _stop(pool)  # running chunks finish and are kept; a second Ctrl-C stops them at once
        bar.close()
        done_rows = sum(s.rows for s in wd.done_chunks().values())
        if done_rows == 0 or isinstance(exc, DataError):
            wd.remove()
            raise
        raise TagInterrupted(done_rows, wd.path, exc) from exc
    if pool is not None:
        pool.shutdown()
    bar.close()
    missing = [i for i in range(chunks) if not wd.is_done(i)]
    if missing:  # cannot happen unless someone deletes or damages chunk files under a running job
        raise DataError(f"chunks {missing[:5]} are missing or damaged in {wd.path}; run again without --resume")
    if opts.progress or (opts.progress is None and sys.stderr.isatty()):
        print(f"writing {output_path} ...", file=sys.stderr, flush=True)  # Excel output can take a while
    try:
        _finish(wd, chunks, output_path, out_fmt, total, opts)
    except KeyboardInterrupt as exc:  # every chunk is kept: --resume only writes the output
        raise TagInterrupted(total.rows, wd.path, exc) from exc
    return total


def _stop(pool: ProcessPoolExecutor) -> None:
    """Let the running chunks finish (they are kept), unless Ctrl-C comes again while waiting:
    then end the workers now. Without this a second Ctrl-C escaped the wait before the workers
    were told to exit, and the process hung at exit waiting for them."""
    def now(signum: int, frame: object) -> None:
        for process in list(getattr(pool, "_processes", {}).values()):  # no public API before Python 3.14
            process.terminate()

    try:
        previous = signal.signal(signal.SIGINT, now)
    except ValueError:  # not the main thread: signals cannot be handled here
        pool.shutdown(wait=True, cancel_futures=True)
        return
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def _reuse(done: TagSummary | None, chunk: list[InputRecord], total: TagSummary) -> bool:
    """Count a chunk the interrupted run finished, if it holds as many rows as the input has there."""
    if done is None or done.rows != len(chunk):
        return False
    total.merge(done)
    total.resumed_rows += done.rows
    return True


def _count(futures: set[Future], total: TagSummary, bar) -> None:  # bar: tqdm or its quiet stand-in
    """Add these chunks (waiting for any still running) to the run's summary and progress."""
    for fut in futures:
        summary = fut.result()
        total.merge(summary)
        bar.update(summary.rows)


def default_output_encoding(output_path: Path) -> str:
    """UTF-8 with a byte-order mark for .csv (Excel opens it as UTF-8, not as the system's code page:
    without the BOM Chinese text is mojibake there); plain UTF-8 for .tsv."""
    return "utf-8-sig" if delimiter_for(output_path) == "," else "utf-8"


def _part_prefix(output_path: Path) -> str:
    return f".{output_path.name}."


def remove_stale_parts(output_path: Path) -> list[Path]:
    """Remove the half-joined outputs (``.OUT.<random>.part``) that a run killed while joining left
    beside the output; returns them. Only names ``_finish`` makes are touched."""
    pattern = re.compile(re.escape(_part_prefix(output_path)) + r"[a-z0-9_]{8}\.part")
    stale = [p for p in output_path.parent.glob(f"{glob.escape(_part_prefix(output_path))}*.part")
             if pattern.fullmatch(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _finish(wd: WorkDir, chunks: int, output_path: Path, fmt: str, total: TagSummary, opts: TagOptions) -> None:
    """Join the chunks into a temporary file beside the output, then move it into place. A full disk
    says which path it could not write; the chunks are kept for ``--resume``."""
    fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=_part_prefix(output_path), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as raw:
            # a GzipFile is a binary file like the raw one, though typeshed's GzipFile is no BinaryIO
            out = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="wb")) if output_path.name.endswith(".gz") else raw
            total.unwritable_chars = write_output(fmt, [wd.chunk_path(i) for i in range(chunks)], out,
                                                  total.columns, total.rows,
                                                  opts.output_encoding or default_output_encoding(output_path),
                                                  delimiter_for(output_path))
            if out is not raw:
                out.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, output_path)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        full = OSError(exc.errno, f"{os.strerror(exc.errno)}: the disk holding {output_path.parent} is full "
                                  f"(writing {output_path}); free space there")
        raise TagInterrupted(total.rows, wd.path, full) from exc
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    remove_stale_parts(output_path)  # left by an earlier run killed while joining
    wd.remove()
