"""Scoring off the event loop, with micro-batching of concurrent requests.

One inference thread per worker process: CPU-bound scoring never blocks the event loop, and
requests that arrive while a batch is being scored are scored together in the next call to
``route`` (no waiting window: an idle server scores a lone request at once). Batching spreads
the fixed per-call cost of the sparse pipeline over many messages under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chuishao.models.answer import RoutingAnswer
from chuishao.serve.model_holder import LoadedModel, ModelHolder


@dataclass(frozen=True)
class Item:
    text: str
    title: str | None = None
    id: str | None = None


@dataclass
class _Job:
    items: list[Item]
    future: asyncio.Future[tuple[list[RoutingAnswer], LoadedModel]]


class QueueFull(Exception):
    """More messages are waiting than the worker takes (``max_queue``): the request gets 503."""


class InferenceQueue:
    def __init__(self, holder: ModelHolder, max_items: int = 32, max_pending: int = 512) -> None:
        self.holder = holder
        self.max_items = max_items
        self.max_pending = max_pending  # messages waiting or being scored, at most
        self.pending = 0
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="chuishao-infer")
        self._task: asyncio.Task[None] | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        return self._executor

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chuishao-inference")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def route(self, items: list[Item]) -> tuple[list[RoutingAnswer], LoadedModel]:
        """Answers for ``items`` in order, and the model snapshot that produced them. QueueFull
        when ``max_pending`` messages are already waiting (a lone request is always taken)."""
        if self.pending and self.pending + len(items) > self.max_pending:
            raise QueueFull(f"{self.pending} messages are waiting to be scored")
        future: asyncio.Future[tuple[list[RoutingAnswer], LoadedModel]] = asyncio.get_running_loop().create_future()
        self.pending += len(items)  # the event loop's thread only: no lock
        try:
            self._queue.put_nowait(_Job(items, future))
            return await future
        finally:
            self.pending -= len(items)

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].items)
            while size < self.max_items and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                size += len(jobs[-1].items)
            jobs = [j for j in jobs if not j.future.done()]  # the client went away
            if not jobs:
                continue
            items = [it for j in jobs for it in j.items]
            try:
                loaded = self.holder.require()  # one snapshot for the whole batch
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests, which answer 503
                _fail(jobs, exc)
                continue
            try:
                answers = await self._score(loaded, items)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests, which answer 500
                if len(jobs) == 1:
                    _fail(jobs, exc)
                    continue
                # One request's input must not fail the others scored with it: score each alone.
                for j in jobs:
                    try:
                        _settle(j, await self._score(loaded, j.items), loaded)
                    except Exception as one:  # noqa: BLE001
                        _fail([j], one)
                continue
            start = 0
            for j in jobs:
                _settle(j, answers[start:start + len(j.items)], loaded)
                start += len(j.items)

    async def _score(self, loaded: LoadedModel, items: list[Item]) -> list[RoutingAnswer]:
        route = functools.partial(loaded.model.route, [i.text for i in items],
                                  titles=[i.title for i in items], ids=[i.id for i in items])
        return await asyncio.get_running_loop().run_in_executor(self._executor, route)


def _settle(job: _Job, answers: list[RoutingAnswer], loaded: LoadedModel) -> None:
    if not job.future.done():  # the client may have gone away
        job.future.set_result((answers, loaded))


def _fail(jobs: list[_Job], exc: Exception) -> None:
    for j in jobs:
        if not j.future.done():
            j.future.set_exception(exc)
