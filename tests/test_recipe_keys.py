"""Which recipe settings each cascade step's resume marker depends on (chuishao.recipes.cascade._key)."""

from __future__ import annotations

from chuishao.config import ChuishaoConfig
from chuishao.recipes.cascade import _STEP_TRANSFORMER_FIELDS, _key

STEPS = ("classical", "dev-exclude", "dev-classical", "extra-rows", "pretrain", "finetune", "export-onnx")


def keys(**overrides: str) -> dict[str, str]:
    recipe = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc", **overrides})
    return {step: _key(recipe, step) for step in STEPS}


def changed(**overrides: str) -> set[str]:
    base, other = keys(), keys(**overrides)
    return {step for step in STEPS if base[step] != other[step]}


def test_a_classical_setting_redoes_every_step_but_pretraining():
    for override in ({"classifier.C": "1.0"}, {"features.min_df": "3"}, {"text.title_repeat": "1"}):
        assert changed(**override) == set(STEPS) - {"pretrain"}, override
    for override in ({"seed": "3"}, {"data.corpus": "other.jsonl"}):  # pretraining reads these
        assert changed(**override) == set(STEPS), override


def test_an_encoder_setting_keeps_the_classical_steps():
    for override in ({"transformer.lr": "0.0001"}, {"transformer.epochs": "5"}):
        assert changed(**override) == {"finetune", "export-onnx"}, override
    assert changed(**{"transformer.int8": "false"}) == {"export-onnx"}


def test_adding_encoders_keeps_those_already_fine_tuned():
    for override in ({"transformer.encoders": "3"}, {"transformer.max_share": "0.3"}):
        assert changed(**override) == set(), override
    recipe = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc"})
    assert _key(recipe, "finetune-2") != _key(recipe, "finetune")  # each encoder its own marker
    more = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc", "transformer.encoders": "3"})
    assert _key(more, "finetune-2") == _key(recipe, "finetune-2")
    for override in ({"transformer.bf16": "true"}, {"transformer.base": "/other-encoder"}):  # pretraining reads them
        assert changed(**override) == {"pretrain", "finetune", "export-onnx"}, override
    # the thread count changes the speed, not the weights: a stopped fine-tuning rerun with more threads resumes
    assert changed(**{"transformer.threads": "1"}) == {"pretrain"}


def test_pretraining_settings_count_only_when_it_is_on():
    # off (0 steps): its rate and batch are read by nothing
    assert changed(**{"transformer.pretrain_lr": "0.001"}) == set()
    on = {"transformer.pretrain_steps": "500"}
    assert changed(**on) == {"pretrain", "finetune", "export-onnx"}
    base, other = keys(**on), keys(**on, **{"transformer.pretrain_lr": "0.001"})
    assert {step for step in STEPS if base[step] != other[step]} == {"pretrain", "finetune", "export-onnx"}
    base, other = keys(**on), keys(**on, **{"transformer.epochs": "5"})
    assert {step for step in STEPS if base[step] != other[step]} == {"finetune", "export-onnx"}


def test_the_dev_split_and_the_extra_rows_redo_their_own_steps():
    assert changed(**{"transformer.dev_fraction": "0.2"}) == set(STEPS) - {"classical"}
    assert changed(**{"transformer.max_other": "10"}) == {"extra-rows", "finetune", "export-onnx"}
    assert changed(**{"transformer.max_length": "256"}) == {"pretrain", "finetune", "export-onnx"}
    assert set(_STEP_TRANSFORMER_FIELDS) <= set(STEPS)


def test_bf16_auto_is_keyed_by_what_it_resolved_to():
    recipe = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.bf16": "auto"})
    assert _key(recipe, "finetune", True) != _key(recipe, "finetune", False)
    assert _key(recipe, "pretrain", True) != _key(recipe, "pretrain", False)
    assert _key(recipe, "classical", True) == _key(recipe, "classical", False)


def test_refit_keeps_every_step_before_it():
    """Turning refit on only adds the refit steps: the encoders fine-tuned on the dev split are kept."""
    assert changed(**{"transformer.refit": "true"}) == set()
    off = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc"})
    on = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc", "transformer.refit": "true"})
    for step in ("refit", "refit-2", "export-refit"):
        assert _key(on, step) == _key(off, step)
    assert _key(on, "refit") != _key(on, "finetune")  # its own marker
    lr = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc", "transformer.refit": "true",
                                    "transformer.lr": "0.0001"})
    assert _key(lr, "refit") != _key(on, "refit")  # it reads the fine-tuning settings


def test_students_keep_every_step_before_them_and_follow_their_teachers():
    """Turning self-training on only adds its steps; the students' steps read what their teachers' labels depend on."""
    assert changed(**{"transformer.students": "1"}) == set()
    assert changed(**{"transformer.student_confidence": "0.9"}) == set()  # the encoders' steps do not read it

    def student_keys(**overrides: str) -> dict[str, str]:
        recipe = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc",
                                            "transformer.students": "1", **overrides})
        return {s: _key(recipe, s) for s in ("pseudo-labels", "student", "export-student")}

    base = student_keys()
    assert student_keys(**{"transformer.students": "2"}) == base  # student 1 is the same whether 1 or 2 are trained
    two = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc", "transformer.students": "2"})
    three = ChuishaoConfig.load(None, {"model_type": "cascade", "transformer.base": "/enc", "transformer.students": "3"})
    assert _key(two, "student-2") == _key(three, "student-2") != _key(two, "student")  # each student its own marker
    assert _key(two, "export-student-2") == _key(three, "export-student-2") != _key(two, "export-student")
    assert student_keys(**{"transformer.max_share": "0.3", "transformer.threads": "1"}) == base
    for override in ({"transformer.encoders": "3"}, {"transformer.int8": "false"}, {"transformer.lr": "0.0001"},
                     {"transformer.max_other": "10"}, {"seed": "1"}, {"data.corpus": "other.jsonl"}):
        assert all(student_keys(**override)[s] != base[s] for s in base), override  # other teachers, other labels
    confident = student_keys(**{"transformer.student_confidence": "0.9"})
    assert all(confident[s] != base[s] for s in base)
