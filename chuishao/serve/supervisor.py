"""The worker processes of ``chuishao serve --workers N``: uvicorn's supervisor, except that SIGHUP
reloads the model inside each worker instead of replacing the workers.

uvicorn answers SIGHUP by starting a new worker, then stopping the old one. A stopping worker
closes the connections it has accepted but not read yet, so a reload under load fails a few
requests (5 of 63,663 in bench/bench_faults.py). Reloading in place loses none: the worker keeps
its socket and connections and loads the new model in a thread while the old one answers
(serve/reloading.py, as for one worker, /admin/reload and the directory watcher). A worker that
dies is still respawned by uvicorn and loads the model directory (or its verified copy) itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("uvicorn.error")


class InPlaceReloads(Multiprocess):
    """uvicorn's Multiprocess (>= 0.52: ``Process.is_ready``) with SIGHUP passed on to the workers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hup_pending: set[int] = set()  # workers told of a SIGHUP once they have started

    def handle_hup(self) -> None:
        log.info("Received SIGHUP, reloading the model in each worker.")
        self.hup_pending = {p.pid for p in self.processes if p.pid is not None}
        self.pass_on_hup()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        if self.hup_pending:
            self.pass_on_hup()

    def pass_on_hup(self) -> None:
        """Signal the workers that have started. One still starting would die of a SIGHUP (its app
        has not set the handler yet): it is signalled on a later round, every 0.5 s. A worker
        replaced meanwhile is forgotten: a new one loads the model directory as it starts."""
        alive = {p.pid for p in self.processes}
        self.hup_pending &= alive
        for process in self.processes:
            pid = process.pid
            if pid is None or pid not in self.hup_pending or not process.is_ready(timeout=1):
                continue
            with contextlib.suppress(ProcessLookupError):  # it died just now: uvicorn respawns it
                os.kill(pid, signal.SIGHUP)
            self.hup_pending.discard(pid)


def run(app: str, *, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, factory=True, workers=workers, **options)``, with InPlaceReloads as the
    supervisor when there are several workers (one worker handles SIGHUP itself)."""
    if workers <= 1:
        uvicorn.run(app, factory=True, workers=1, **options)
        return
    config = uvicorn.Config(app, factory=True, workers=workers, **options)
    socket = config.bind_socket()
    try:
        InPlaceReloads(config, sockets=[socket]).run()
    finally:
        socket.close()
