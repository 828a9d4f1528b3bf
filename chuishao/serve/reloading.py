"""Model reloads outside requests: the directory watcher and SIGHUP (/admin/reload is in routes/admin.py)."""

from __future__ import annotations

import asyncio
import logging
import signal

from chuishao.serve.metrics import ServeMetrics
from chuishao.serve.model_holder import ModelHolder

log = logging.getLogger("chuishao.serve")


async def _reload(holder: ModelHolder, metrics: ServeMetrics, why: str) -> None:
    previous = holder.require().version
    try:
        new = await asyncio.to_thread(holder.load)
    except Exception as exc:  # noqa: BLE001 - the old model keeps serving
        log.error("%s: new model not loaded, still serving %s: %s", why, previous, exc)
        return
    metrics.model_switched(previous, new.version)


_running: set[asyncio.Task] = set()


def _keep(task: asyncio.Task) -> None:
    """Hold a fire-and-forget task until it ends: the loop keeps only a weak reference."""
    _running.add(task)
    task.add_done_callback(_running.discard)


def reload_on_hangup(holder: ModelHolder, metrics: ServeMetrics) -> bool:
    """SIGHUP reloads the model in this process. With one worker uvicorn runs the app in its own
    process and leaves HUP at its default, which ends the service: an operator's usual "reload"
    must not. (With several workers the uvicorn parent gets HUP and replaces them.)"""
    if not hasattr(signal, "SIGHUP"):
        return False
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: _keep(loop.create_task(_reload(holder, metrics, "SIGHUP"))))
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (tests), or no signals here
        return False
    return True


def stop_reloading_on_hangup() -> None:
    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


async def watch(holder: ModelHolder, metrics: ServeMetrics, every: float) -> None:
    """Pick up a model written into the served directory (how workers other than the one that got
    /admin/reload follow it). A broken new model is logged and the old one keeps serving."""
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        previous = holder.require().version
        try:
            if await asyncio.to_thread(holder.reload_if_changed):
                metrics.model_switched(previous, holder.require().version)
        except Exception as exc:  # noqa: BLE001
            log.error("new model in %s not loaded, still serving %s: %s", holder.model_dir, previous, exc)
