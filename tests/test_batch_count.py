"""The batch guard counts items as the body arrives and stops reading them at the limit + 1-th."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

pytest.importorskip("starlette")
from hypothesis import given, settings
from hypothesis import strategies as st

from chuishao.serve.batch_count import ItemCounter
from chuishao.serve.limits import JsonGuard

LIMIT = 8
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=6)


def feed_in_chunks(body: bytes, cuts: list[int], limit: int = LIMIT) -> ItemCounter:
    counter = ItemCounter(limit)
    edges = sorted({0, *(c % (len(body) + 1) for c in cuts), len(body)})
    if len(edges) == 1:  # no body at all
        counter.feed(b"", final=True)
    for start, end in itertools.pairwise(edges):
        counter.feed(body[start:end], final=end == len(body))
        if counter.over:
            break
    return counter


@settings(max_examples=200, deadline=None)
@given(items=st.lists(json_values, max_size=12), before=st.dictionaries(st.text(), json_values, max_size=2),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8), ascii_only=st.booleans(),
       spaced=st.booleans())
def test_the_count_is_the_same_however_the_body_is_cut(items, before, cuts, ascii_only, spaced):
    doc = {**{k: v for k, v in before.items() if k != "items"}, "items": items}
    body = json.dumps(doc, ensure_ascii=ascii_only, indent=1 if spaced else None).encode()
    counter = feed_in_chunks(body, cuts)
    assert counter.over == (len(items) > LIMIT)
    assert counter.count == min(len(items), LIMIT + 1)


def test_an_over_limit_batch_is_known_before_the_rest_arrives():
    counter = ItemCounter(LIMIT)
    counter.feed(b'{"items": [' + b'{"text": "x"}, ' * (LIMIT + 1))
    assert counter.over and counter.count == LIMIT + 1
    counter.feed(b"\xff\xfe not even UTF-8")  # the rest is dropped unread
    assert counter.over


def test_bodies_that_are_not_batches_leave_the_answer_to_the_app():
    for body in (b"[1, 2, 3]", b'{"item": [1]}', b'{"items": 5}', b"", b'{"items": [1, 2'):
        counter = feed_in_chunks(body, [3])
        assert not counter.over and counter.done
    with pytest.raises(UnicodeDecodeError):
        ItemCounter(LIMIT).feed('{"items": []}'.encode("utf-16-le"), final=True)
    with pytest.raises(UnicodeDecodeError):  # a UTF-8 sequence cut by the end of the body
        ItemCounter(LIMIT).feed(b'{"items": ["\xe5\x99', final=True)


def run_guard(chunks: list[bytes]) -> tuple[int, dict, int, bool]:
    """Send ``chunks`` through JsonGuard; returns the status, the answer, the chunks it read and
    whether the app behind it was called."""
    called = False

    async def app(scope, receive, send):
        nonlocal called
        called = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/classify/batch", "headers": []}
    asyncio.run(JsonGuard(app, max_batch=LIMIT)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), read, called


def test_the_guard_answers_413_without_decoding_or_keeping_the_rest():
    head = b'{"items": [' + b'{"text": "x"}, ' * (LIMIT + 1)
    # what follows the limit + 1-th item is neither UTF-8 nor JSON: read whole, it would be a 422
    status, answer, read, called = run_guard([head, b"\xff" * 1000, b"\xfe" * 1000 + b"]}"])
    assert status == 413 and f"the limit is {LIMIT}" in answer["detail"] and not called
    assert read == 3  # the whole body is received (and dropped) before the answer, so the client reads it


def test_the_guard_passes_a_valid_batch_whole_and_refuses_utf16():
    items = json.dumps({"items": [{"text": "楼下烧烤店油烟很大"}] * LIMIT}, ensure_ascii=False).encode()
    status, _, read, called = run_guard([items[:7], items[7:20], items[20:]])
    assert status == 200 and called and read == 3
    status, answer, _, called = run_guard([json.dumps({"items": []}).encode("utf-16")])
    assert status == 422 and "UTF-8" in answer["detail"] and not called
