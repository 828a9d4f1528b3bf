"""The checkpoint of a resumable run: a hidden folder beside the output holding finished chunks.

Chunk k holds input rows [k*size+1, (k+1)*size]. A chunk counts as done only once its data file
exists, and that file appears by an atomic rename after fsync, so kill -9 or a full disk leaves
either a whole chunk or none: a resumed run redoes exactly the missing chunks. Files damaged
later (a full disk, a copy cut short, a hand edit) are caught by the size and row count each
chunk's summary records: a chunk that does not match them, or whose summary is unreadable, is
redone rather than joined.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chuishao.batch.summary import TagSummary
from chuishao.errors import DataError

STATE_FORMAT = "chuishao-tag-run/1"


def workdir_for(output: Path) -> Path:
    return output.parent / f".{output.name}.partial"


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Held while a run writes ``output``: a second run with the same -o is refused instead of wiping the first
    one's chunks. A POSIX record lock (lockf) on a hidden file beside the output: the system drops it when the
    process dies, so a killed run never blocks its --resume, and the run's forked workers do not inherit it (an
    flock they would hold on after their parent was killed). Where fcntl is missing (Windows) runs are not guarded."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = output.parent / f".{output.name}.lock"
    for _ in range(5):  # the file may be unlinked by the run that held it between our open and our lock
        with path.open("a") as fh:
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise DataError(f"another run is writing {output} now (lock {path}): wait for it to end, or "
                                    f"choose another output") from None
                # a file system without locks (some network mounts): run unguarded rather than not at all
                print(f"chuishao: warning: {path}: cannot lock ({exc.strerror}); two runs on {output} would clash",
                      file=sys.stderr, flush=True)
                yield
                return
            if not path.exists() or os.stat(path).st_ino != os.fstat(fh.fileno()).st_ino:
                continue  # we locked an unlinked file: try the one there now
            try:
                yield
            finally:
                path.unlink(missing_ok=True)  # while still locked: the next run makes and locks its own
            return
    raise DataError(f"{path}: could not take the lock of {output}; try again")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> object:
    """The parsed file; ValueError when it is not JSON (a damaged checkpoint)."""
    return json.loads(path.read_text(encoding="utf-8"))


class WorkDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    # ---- chunks -------------------------------------------------------------------
    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:08d}.jsonl"

    def summary_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:08d}.summary.json"

    def is_done(self, index: int) -> bool:
        return self.chunk_summary(index) is not None

    def done_chunks(self) -> dict[int, TagSummary]:
        """The finished chunks that are still whole, by index, with their summaries."""
        indices = sorted(int(p.name[6:14]) for p in self.path.glob("chunk-*.jsonl"))
        summaries = {index: self.chunk_summary(index) for index in indices}
        return {index: summary for index, summary in summaries.items() if summary is not None}

    def write_chunk(self, index: int, lines: list[str], summary: TagSummary) -> None:
        data = "".join(lines).encode("utf-8")
        # Summary first, data last: the data file's appearance is what marks the chunk done.
        state = {**summary.to_state(), "bytes": len(data)}
        _write_atomic(self.summary_path(index), json.dumps(state, ensure_ascii=False).encode())
        _write_atomic(self.chunk_path(index), data)

    def chunk_summary(self, index: int) -> TagSummary | None:
        """The chunk's summary if the chunk is whole: its data file has the size recorded when it was
        written. None for a missing, damaged or unverifiable chunk, which a run redoes."""
        try:
            state = _read_json(self.summary_path(index))
            size = self.chunk_path(index).stat().st_size
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("bytes") != size:  # cut short, grown, or from an older run
            return None
        try:
            return TagSummary.from_state(state)
        except ValueError:
            return None

    # ---- run state ------------------------------------------------------------------
    def start(self, state: dict[str, object], resume: bool) -> dict[str, Any]:
        """Open the folder for a run; with ``resume`` keep finished chunks if the run is the same one."""
        state_file = self.path / "state.json"
        if resume and state_file.is_file():
            old = self._saved_state(state_file)
            changed = [k for k in state if k != "chunk_size" and old.get(k) != state[k]]
            if old.get("format") != STATE_FORMAT or changed:
                raise DataError(
                    f"cannot resume: {', '.join(changed) or 'format'} changed since the interrupted run "
                    f"(was {', '.join(repr(old.get(k)) for k in changed)}); run without --resume to start over"
                )
            size = old.get("chunk_size")
            if type(size) is not int or size < 1:  # a bad chunk size would misplace every row
                raise self._damaged(state_file)
            for tmp in self.path.glob("*.tmp"):  # half-written files of the killed run
                tmp.unlink()
            return old
        self.remove()
        self.path.mkdir(parents=True)
        state = {"format": STATE_FORMAT, **state}
        _write_atomic(state_file, json.dumps(state, ensure_ascii=False, indent=1).encode())
        return state

    def _saved_state(self, state_file: Path) -> dict[str, object]:
        """The interrupted run's state; DataError when it is not what ``start`` wrote."""
        try:
            old = _read_json(state_file)
        except ValueError:
            old = None
        if not isinstance(old, dict):
            raise self._damaged(state_file)
        return old

    def _damaged(self, state_file: Path) -> DataError:
        return DataError(f"cannot resume: the checkpoint in {self.path} is damaged ({state_file.name} is not a run's "
                         f"state); run without --resume to start over, or remove {self.path}")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
