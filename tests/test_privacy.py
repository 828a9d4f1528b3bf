"""Personal data never survives masking, however it is written (property-based)."""

from __future__ import annotations

from hypothesis import given, settings
from pii_variants import messages, needles, survives

from chuishao.pipeline.normalize import normalize_text
from chuishao.pipeline.privacy import mask_pii_raw
from chuishao.serve.logs import mask_for_log


@settings(max_examples=400, deadline=None)
@given(messages())
def test_no_needle_survives_masking(case):
    needle, message = case
    for masked in (mask_pii_raw(message), normalize_text(message), mask_for_log(message)):
        assert not survives(needle, masked), (needle, message, masked)


@settings(max_examples=200, deadline=None)
@given(needles())
def test_a_needle_alone_is_one_placeholder(case):
    _needle, written = case
    masked = mask_pii_raw(written)
    assert masked.strip() in {"<PHONE>", "<ID>", "<CARD>", "<EMAIL>"}, (written, masked)


def test_text_without_personal_data_is_returned_as_is():
    for text in ("３号楼５０２室，２０２４年１２月１日", "楼下烧烤店油烟扰民！", "2018.07.21–2018.07.20车位价格", "𝟑号楼"):
        assert mask_pii_raw(text) == text
