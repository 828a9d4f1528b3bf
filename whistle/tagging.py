"""Kept for old imports: batch tagging now lives in :mod:`whistle.batch`."""

from whistle.batch import TagInterrupted, TagOptions, TagSummary, output_record, tag_file, tag_records

__all__ = ["TagInterrupted", "TagOptions", "TagSummary", "output_record", "tag_file", "tag_records"]
