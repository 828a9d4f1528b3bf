"""Batch tagging: files of any size through the model, one output row per input row.

``local`` runs on one machine (streamed, multi-process, resumable); ``spark`` on a cluster.
"""

from chuishao.batch.local import TagInterrupted, TagOptions, tag_file
from chuishao.batch.rows import output_record, tag_records
from chuishao.batch.summary import TagSummary

__all__ = ["TagInterrupted", "TagOptions", "TagSummary", "output_record", "tag_file", "tag_records"]
