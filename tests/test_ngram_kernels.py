"""The compiled n-gram kernels (numba) must give exactly the numpy path's matrices and answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from chuishao.pipeline import ngram_kernels
from chuishao.pipeline.doc import Doc
from chuishao.pipeline.features import NgramTfidf

pytest.importorskip("numba")

TEXTS = [
    "小区门口占道经营严重，晚上十点还在卖烧烤",
    "楼下烧烤店油烟很大晚上还吵吵吵吵",
    "哈哈哈哈哈哈哈哈",  # one n-gram many times: counts above 1
    "",  # an empty document between others
    "a b c 123 小区",
    "𠀀𠀁𠀂 生僻字在基本平面之外",  # code points above 0xFFFF: no direct unigram column
    "标题里有\x00空字符和\x01分隔符",  # the batch separators inside a text
    "完全没有见过的字眼：龘靐齉",
    "物业" * 1500,  # long: the per-document table grows
    "群租房隔断很多存在安全隐患，群租房",
] * 2  # 20 documents: over ngram_kernels.MIN_BATCH


def _docs(texts: list[str]) -> list[Doc]:
    return [Doc(t, tuple(w for w in t.replace("，", " ").split() if w)) for t in texts]


def _same(a, b) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)  # same entry order, not just the same values
    assert np.array_equal(a.data, b.data)


@pytest.mark.parametrize(("kind", "ngram_range"), [("char", (1, 3)), ("char", (2, 4)), ("word", (1, 1)), ("word", (1, 2))])
def test_compiled_counts_equal_numpy_counts(kind, ngram_range):
    docs = _docs(TEXTS)
    vec = NgramTfidf(kind, ngram_range, min_df=1).fit(docs[:12])  # the rest has unseen n-grams too
    compiled = vec._counts_compiled(docs)
    assert compiled is not None
    assert compiled.nnz > 0
    _same(compiled, vec._counts_numpy(docs))


def test_compiled_transform_equals_sklearn():
    docs = _docs(TEXTS)
    assert len(docs) >= ngram_kernels.MIN_BATCH  # so transform takes the compiled path
    ours = NgramTfidf("char", (1, 3), min_df=1).fit(docs)
    texts = [d.text.replace("\x00", " ").replace("\x01", " ") for d in docs]
    ref = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, lowercase=False)
    R = ref.fit_transform(texts)
    index = {t: i for i, t in enumerate(ref.get_feature_names_out())}
    perm = np.array([index[t] for t in ours.terms_])
    assert np.abs(R[:, perm].toarray() - ours.transform(docs).toarray()).max() < 1e-6


def test_kernels_can_be_turned_off(monkeypatch):
    ngram_kernels.kernels.cache_clear()
    monkeypatch.setenv("CHUISHAO_KERNELS", "0")
    try:
        assert ngram_kernels.kernels() is None
        vec = NgramTfidf("char", (1, 2), min_df=1).fit(_docs(TEXTS))
        assert vec._counts_compiled(_docs(TEXTS)) is None
    finally:
        ngram_kernels.kernels.cache_clear()


def test_routing_answers_do_not_depend_on_the_path(tiny_model, monkeypatch):
    from chuishao.models import evidence
    from chuishao.pipeline import features

    texts = [t for t in TEXTS if t.strip()]
    fast = [a.model_dump() for a in tiny_model.route(texts)]
    monkeypatch.setattr(features, "MIN_BATCH", 10**9)  # numpy path for every batch
    monkeypatch.setattr(evidence, "MIN_BATCH", 10**9)
    slow = [a.model_dump() for a in tiny_model.route(texts)]
    assert fast == slow
    assert any(a["topic"] for a in fast)


@pytest.mark.parametrize("columns", [(0, 40), (25, 60)])
def test_compiled_evidence_candidates_equal_numpy(columns, monkeypatch):
    import scipy.sparse as sp

    from chuishao.models import evidence

    rng = np.random.default_rng(3)
    X = sp.random(50, 60, density=0.3, format="csr", random_state=4)
    X.data = np.round(X.data, 1)  # ties, which both paths must break by entry order
    weights = rng.normal(size=(60, 5)).astype(np.float32)
    best = rng.integers(0, 5, size=50)
    displayable = rng.random(60) < 0.8
    need = rng.random(50) < 0.7
    fast = evidence.top_candidates(X, best, weights, displayable, columns, need, per_row=4)
    monkeypatch.setattr(evidence, "MIN_BATCH", 10**9)
    slow = evidence.top_candidates(X, best, weights, displayable, columns, need, per_row=4)
    assert fast[0].size > 0
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert set(fast[0].tolist()) <= set(np.nonzero(need)[0].tolist())
    assert all(columns[0] <= c < columns[1] and displayable[c] for c in fast[1].tolist())
