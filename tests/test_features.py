import itertools

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from chuishao.pipeline.doc import Doc
from chuishao.pipeline.features import HashIndex, NgramTfidf

TEXTS = [
    "小区门口占道经营严重",
    "楼下烧烤店油烟很大晚上还吵",
    "小区物业不作为电梯坏了",
    "群租房隔断很多存在安全隐患",
    "小区门口烧烤油烟",
    "a b 小区",
]


def _aligned(ours: NgramTfidf, X, ref: TfidfVectorizer, R, prefix=""):
    index = {t: i for i, t in enumerate(ref.get_feature_names_out())}
    assert sorted(index) == sorted(prefix + t for t in ours.terms_)
    perm = np.array([index[prefix + t] for t in ours.terms_])
    return np.abs(R[:, perm].toarray() - X.toarray()).max()


@pytest.mark.parametrize("ngram_range,min_df", [((1, 3), 1), ((2, 4), 2), ((1, 1), 1)])
def test_char_tfidf_equals_sklearn(ngram_range, min_df):
    docs = [Doc(t, ()) for t in TEXTS]
    ours = NgramTfidf("char", ngram_range, min_df=min_df).fit(docs)
    ref = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, min_df=min_df, sublinear_tf=True, lowercase=False)
    R = ref.fit_transform(TEXTS)
    assert _aligned(ours, ours.transform(docs), ref, R) < 1e-6


@pytest.mark.parametrize("ngram_range,min_df,max_df", [((1, 3), 1, 0.5), ((1, 2), 1, 0.34), ((1, 3), 2, 0.5), ((2, 3), 1, 0.2)])
def test_char_tfidf_with_max_df_equals_sklearn(ngram_range, min_df, max_df):
    docs = [Doc(t, ()) for t in TEXTS]
    ours = NgramTfidf("char", ngram_range, min_df=min_df, max_df=max_df).fit(docs)
    ref = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, min_df=min_df, max_df=max_df, sublinear_tf=True,
                          lowercase=False)
    R = ref.fit_transform(TEXTS)
    assert len(ours.terms_) < len(NgramTfidf("char", ngram_range, min_df=min_df).fit(docs).terms_)  # max_df dropped some
    assert _aligned(ours, ours.transform(docs), ref, R) < 1e-6


@pytest.mark.parametrize("ngram_range,min_df,max_df,max_features", [((1, 3), 1, 1.0, 10), ((1, 3), 1, 1.0, 40),
                                                                    ((1, 2), 1, 0.5, 25), ((1, 1), 1, 1.0, 5)])
def test_char_tfidf_with_max_features_keeps_the_most_documents_ngrams(ngram_range, min_df, max_df, max_features):
    """max_features keeps the n-grams the most documents have (scikit-learn: the most occurrences,
    see NgramTfidf's docstring); on those n-grams the matrix is scikit-learn's."""
    docs = [Doc(t, ()) for t in TEXTS]
    ours = NgramTfidf("char", ngram_range, min_df=min_df, max_df=max_df, max_features=max_features).fit(docs)
    unlimited = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, min_df=min_df, max_df=max_df, lowercase=False)
    df = dict(zip(unlimited.fit(TEXTS).get_feature_names_out(),
                  (unlimited.transform(TEXTS) > 0).sum(axis=0).A1.tolist(), strict=True))
    kept = set(ours.terms_)
    assert len(kept) == max_features < len(df)
    assert min(df[t] for t in kept) >= max(df[t] for t in df if t not in kept)
    ref = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, vocabulary=sorted(kept), sublinear_tf=True,
                          lowercase=False)
    R = ref.fit_transform(TEXTS)
    assert _aligned(ours, ours.transform(docs), ref, R) < 1e-6


def test_word_tfidf_equals_sklearn():
    token_lists = [t.split("|") for t in ["小区|门口|占道经营", "小区|物业|不作为", "群租房|隔断|小区|门口", "物业|小区"]]
    docs = [Doc("", tuple(t)) for t in token_lists]
    ours = NgramTfidf("word", (1, 2), min_df=1).fit(docs)

    def analyzer(tokens):
        return tokens + [a + b for a, b in itertools.pairwise(tokens)]

    ref = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True)
    R = ref.fit_transform(token_lists)
    assert _aligned(ours, ours.transform(docs), ref, R) < 1e-6


def test_unseen_ngrams_and_empty_docs():
    ours = NgramTfidf("char", (1, 2), min_df=1).fit([Doc(t, ()) for t in TEXTS])
    X = ours.transform([Doc("", ()), Doc("完全没见过的字", ())])
    assert X.shape == (2, len(ours.terms_))
    assert X[0].nnz == 0
    assert X[1].nnz == 0 or np.isclose(np.linalg.norm(X[1].toarray()), 1.0)


def test_min_df_with_nothing_left_is_an_error():
    with pytest.raises(ValueError, match="min_df"):
        NgramTfidf("char", (3, 3), min_df=5).fit([Doc("小区", ())])


def test_hash_index_finds_every_key_and_rejects_others():
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 2**63, size=50_000, dtype=np.uint64))
    index = HashIndex(keys)
    assert np.array_equal(index.lookup(keys), np.arange(keys.shape[0]))
    others = rng.integers(0, 2**63, size=10_000, dtype=np.uint64)
    others = others[~np.isin(others, keys)]
    assert (index.lookup(others) == -1).all()


def test_vectorizer_state_is_data_and_the_index_is_rebuilt():
    import json

    docs = [Doc(t, ()) for t in TEXTS]
    ours = NgramTfidf("char", (1, 3), min_df=1).fit(docs)
    params, arrays = ours.to_state()
    assert sorted(arrays) == ["hashes", "idf", "terms.lengths", "terms.text"]  # the derived table is not saved
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    clone = NgramTfidf.from_state(json.loads(json.dumps(params)), arrays)
    assert clone.ngram_range == (1, 3) and list(clone.terms_) == list(ours.terms_)
    assert (clone.transform(docs) != ours.transform(docs)).nnz == 0
    with pytest.raises(ValueError, match="vocabulary"):
        NgramTfidf.from_state(params, {**arrays, "idf": arrays["idf"][:-1]})


def test_term_table_indexes_iterates_and_round_trips_as_arrays():
    from chuishao.pipeline.features import TermTable

    terms = ["小区", "c", "", "占道经营", "a\x01b"]
    table = TermTable(terms)
    assert len(table) == len(terms)
    assert [table[i] for i in range(len(terms))] == terms
    assert list(table) == terms
    arrays = table.to_state()
    assert arrays["text"].dtype == np.uint8 and arrays["lengths"].dtype == np.uint8
    assert list(TermTable.from_state(arrays)) == terms
    with pytest.raises(ValueError, match="lengths add up"):
        TermTable.from_state({**arrays, "lengths": arrays["lengths"] + 1})


def test_pickled_models_with_term_arrays_still_convert():
    """Pickles from before TermTable held the terms as an array: the converter's restore reads them."""
    from chuishao.models.legacy import _restore_vectorizer

    docs = [Doc(t, ()) for t in TEXTS]
    ours = NgramTfidf("char", (1, 2), min_df=1).fit(docs)
    old = NgramTfidf.__new__(NgramTfidf)
    old.__dict__.update({k: v for k, v in vars(ours).items() if k not in ("_index", "_unigrams")})
    old.terms_ = np.array(list(ours.terms_), dtype=object)  # the format before TermTable
    _restore_vectorizer(old)
    assert list(old.terms_) == list(ours.terms_)
    restored = NgramTfidf.from_state(*old.to_state())
    assert (restored.transform(docs) != ours.transform(docs)).nnz == 0
