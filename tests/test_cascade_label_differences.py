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
