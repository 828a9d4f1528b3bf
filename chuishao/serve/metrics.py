"""Prometheus metrics: request counts, latency, topics, needs_review.

Each app gets its own registry (tests build several apps in one process). With several worker
processes, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``chuishao serve`` and /metrics adds up the
per-process files.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from chuishao.models.answer import RoutingAnswer

KNOWN_CHANNELS = frozenset({"hotline", "wechat", "web", "app", "email", "sms", "weibo"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("chuishao_http_requests_total", "HTTP requests", ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("chuishao_http_request_duration_seconds", "time in the app per request",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter("chuishao_answers_total", "messages answered", ["channel"], registry=r)
        self.topics = Counter("chuishao_topic_total", "messages per predicted topic", ["topic"], registry=r)
        self.needs_review = Counter("chuishao_needs_review_total", "answers flagged for review", registry=r)
        self.unclassifiable = Counter("chuishao_unclassifiable_total", "messages the model refused", registry=r)
        self.feedback = Counter("chuishao_feedback_total", "operator feedback stored", ["agrees"], registry=r)
        self.model_info = Gauge("chuishao_model_info", "served model version (1 = in service, 0 = replaced)", ["version"],
                                registry=r, multiprocess_mode="livemax")
        # livemin: 0 as soon as one worker cannot write feedback
        self.store_up = Gauge("chuishao_feedback_store_up", "1 when the feedback store takes writes, 0 when not",
                              registry=r, multiprocess_mode="livemin")

    def observe_answers(self, answers: list[RoutingAnswer], channel: str) -> None:
        # Why: a free-form label value would let clients create unbounded time series.
        channel = channel if channel in KNOWN_CHANNELS else "other"
        for a in answers:
            self.answers.labels(channel).inc()
            if a.error:
                self.unclassifiable.inc()
                continue
            self.topics.labels(a.topic or "none").inc()
            if a.needs_review:
                self.needs_review.inc()

    def model_switched(self, old: str | None, new: str) -> None:
        if old is not None and old != new:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                # remove() is not implemented across processes (the old series stayed at 1): 0 = replaced
                self.model_info.labels(old).set(0)
            else:
                self.model_info.remove(old)
        self.model_info.labels(new).set(1)

    @staticmethod
    def process_ended() -> None:
        """A worker stopping (a SIGHUP replaces them all): its live gauges, the model it served
        among them, must stop counting, or /metrics reports that model in service for ever."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(os.getpid())

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
