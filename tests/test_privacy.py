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


@settings(max_examples=300, deadline=None)
@given(needles(), needles())
def test_an_id_holding_personal_data_is_stored_as_a_keyed_pseudonym(case, other):
    from chuishao.pipeline.privacy import pseudonymise_id

    needle, written = case
    for message_id in (written, f"rx-{written}-1"):
        stored = pseudonymise_id(message_id, b"key one")
        assert not survives(needle, stored), (message_id, stored)
        assert len(stored) <= 128 and "#h" in stored
        assert pseudonymise_id(message_id, b"key one") == stored  # the same message groups its corrections
        assert pseudonymise_id(stored, b"key one") == stored and mask_pii_raw(stored) == stored
        assert pseudonymise_id(message_id, b"key two") != stored  # the hash is keyed
    if other[1] != written:  # two ids that mask alike stay two messages
        assert pseudonymise_id(other[1], b"key one") != pseudonymise_id(written, b"key one")


def test_ids_without_personal_data_are_kept_as_given():
    from chuishao.pipeline.privacy import pseudonymise_id

    for message_id in ("rx-20240612-0001", "a1", "工单2024-06-01-123", "12345678", "2024.06.01-2024.06.30"):
        assert pseudonymise_id(message_id, b"k") == message_id
