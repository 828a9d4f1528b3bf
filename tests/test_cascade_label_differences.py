"""One wording for the labels an encoder (or its training rows) lacks or adds against the classical model's: the
cascade recipe's check before fine-tuning and the cascade build's check of the exported encoders both use it."""

from __future__ import annotations

from chuishao.transformer.cascade_build import label_differences


def test_label_differences_names_what_is_lacking_and_what_is_added() -> None:
    classical = ["W01", "W02", "W03"]
    assert label_differences(classical, ["W03", "W02", "W01"]) == ""
    assert label_differences(classical, ["W02"]) == "lacks the classical model's W01, W03"
    assert label_differences(classical, [*classical, "W99", "W10"]) == "has W10, W99, which the classical model does not"
    assert label_differences(classical, ["W02", "W03", "W99"]) == (
        "lacks the classical model's W01; it has W99, which the classical model does not")
    assert label_differences(classical, ["W02", "W03", "W99"], plural=True) == (
        "lack the classical model's W01; they have W99, which the classical model does not")


def test_check_labels_tests_by_the_wording_so_the_two_never_disagree(tmp_path) -> None:
    """Labels equal as text pass (the classical model's classes may be numbers where the encoder's are strings); a
    difference is refused with the helper's words, never with an empty predicate."""
    import json

    import pytest

    from chuishao.errors import DataError
    from chuishao.models.onnx_encoder import META_FILE
    from chuishao.transformer.cascade_build import check_labels

    (tmp_path / META_FILE).write_text(json.dumps({"labels": ["1", "2"]}), encoding="utf-8")
    check_labels([tmp_path], [1, 2], "classical")  # type: ignore[list-item]  # numeric classes, as text the same
    with pytest.raises(DataError, match=r"it lacks the classical model's 3\. Fine-tune"):
        check_labels([tmp_path], [1, 2, 3], "classical")  # type: ignore[list-item]
