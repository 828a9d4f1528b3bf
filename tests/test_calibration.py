import numpy as np
import pytest
from sklearn.metrics import f1_score

from chuishao.models.calibration import fit_class_bias, fit_temperature, macro_f1_from_predictions, softmax


def _scores_with_a_timid_rare_class(seed: int = 0, n_common: int = 400, n_rare: int = 20):
    """Three classes; the rare one (2) scores a little below its true level, as a linear model
    trained on a dozen examples does: right when it wins, but it rarely wins."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * n_common + [1] * n_common + [2] * n_rare)
    scores = rng.normal(0, 0.3, size=(len(y), 3)).astype(np.float32)
    scores[np.arange(len(y)), y] += 1.0
    scores[:, 2] -= 0.8
    return scores, y


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 6, 300))  # class 5: predicted, never true
    assert macro_f1_from_predictions(pred, y, 6) == pytest.approx(f1_score(y, pred, average="macro"))


def test_class_bias_raises_the_timid_rare_class_and_generalises():
    scores, y = _scores_with_a_timid_rare_class(seed=0)
    bias = fit_class_bias(scores, y)
    assert bias[2] > bias[0] and bias[2] > bias[1]
    fresh, y2 = _scores_with_a_timid_rare_class(seed=1)  # other rows from the same model
    before = fresh.argmax(axis=1)
    after = (fresh + bias).argmax(axis=1)
    assert (after[y2 == 2] == 2).mean() > (before[y2 == 2] == 2).mean() + 0.3
    assert f1_score(y2, after, average="macro") > f1_score(y2, before, average="macro") + 0.05


def test_class_bias_is_zero_when_nothing_is_to_gain():
    y = np.repeat([0, 1, 2], 50)
    scores = np.eye(3, dtype=np.float32)[y] * 2.0  # already perfect: any offset that changes nothing is skipped
    assert not fit_class_bias(scores, y).any()


def test_shrink_and_accuracy_weight_pull_the_offsets_in():
    scores, y = _scores_with_a_timid_rare_class(seed=2)
    full = fit_class_bias(scores, y)
    np.testing.assert_allclose(fit_class_bias(scores, y, shrink=0.5), full * 0.5)
    weighted = fit_class_bias(scores, y, accuracy_weight=5.0)
    pred_full, pred_weighted = (scores + full).argmax(1), (scores + weighted).argmax(1)
    assert (pred_weighted == y).mean() >= (pred_full == y).mean()


def test_temperature_keeps_the_ranking():
    scores, y = _scores_with_a_timid_rare_class(seed=3)
    t = fit_temperature(scores, y)
    assert 0.01 <= t <= 10
    np.testing.assert_array_equal(softmax(scores, t).argmax(1), scores.argmax(1))
