"""The checkpoint of a resumable run: a hidden folder beside the output holding finished chunks.

Chunk k holds input rows [k*size+1, (k+1)*size]. A chunk counts as done only once its data file
exists, and that file appears by an atomic rename after fsync, so kill -9 or a full disk leaves
either a whole chunk or none: a resumed run redoes exactly the missing chunks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from whistle.batch.summary import TagSummary
from whistle.errors import DataError

STATE_FORMAT = "whistle-tag-run/1"


def workdir_for(output: Path) -> Path:
    return output.parent / f".{output.name}.partial"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class WorkDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    # ---- chunks -------------------------------------------------------------------
    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:08d}.jsonl"

    def summary_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:08d}.summary.json"

    def is_done(self, index: int) -> bool:
        return self.chunk_path(index).is_file() and self.summary_path(index).is_file()

    def done_chunks(self) -> set[int]:
        return {int(p.name[6:14]) for p in self.path.glob("chunk-*.jsonl") if self.summary_path(int(p.name[6:14])).is_file()}

    def write_chunk(self, index: int, lines: list[str], summary: TagSummary) -> None:
        # Summary first, data last: the data file's appearance is what marks the chunk done.
        _write_atomic(self.summary_path(index), json.dumps(summary.to_state(), ensure_ascii=False).encode())
        _write_atomic(self.chunk_path(index), "".join(lines).encode("utf-8"))

    def chunk_summary(self, index: int) -> TagSummary:
        return TagSummary.from_state(json.loads(self.summary_path(index).read_text(encoding="utf-8")))

    # ---- run state ------------------------------------------------------------------
    def start(self, state: dict[str, object], resume: bool) -> dict[str, object]:
        """Open the folder for a run; with ``resume`` keep finished chunks if the run is the same one."""
        state_file = self.path / "state.json"
        if resume and state_file.is_file():
            old = json.loads(state_file.read_text(encoding="utf-8"))
            changed = [k for k in state if k != "chunk_size" and old.get(k) != state[k]]
            if old.get("format") != STATE_FORMAT or changed:
                raise DataError(
                    f"cannot resume: {', '.join(changed) or 'format'} changed since the interrupted run "
                    f"(was {', '.join(repr(old.get(k)) for k in changed)}); run without --resume to start over"
                )
            for tmp in self.path.glob("*.tmp"):  # half-written files of the killed run
                tmp.unlink()
            return old
        self.remove()
        self.path.mkdir(parents=True)
        state = {"format": STATE_FORMAT, **state}
        _write_atomic(state_file, json.dumps(state, ensure_ascii=False, indent=1).encode())
        return state

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
