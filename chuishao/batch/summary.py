"""Counts for a tagging run: mergeable per chunk, so a resumed run still reports the whole file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TypeGuard

URGENCY_RANK = {"high": 0, "medium": 1}  # chuishao.pipeline.urgency's levels, most urgent first
URGENT_KEPT = 100  # urgent messages a summary lists (all are counted)


@dataclass
class TagSummary:
    rows: int = 0
    tagged: int = 0
    errors: int = 0
    needs_review: int = 0
    topics: Counter = field(default_factory=Counter)
    columns: list[str] = field(default_factory=list)  # kept input columns, in order of first appearance
    resumed_rows: int = 0  # rows taken over from an interrupted run
    unwritable_chars: int = 0  # characters the CSV output encoding could not hold, written as "?"
    urgent_counts: Counter = field(default_factory=Counter)  # urgent messages by level, all of them
    urgent: list[list] = field(default_factory=list)  # [rank, row, id, level, triggers] of urgent messages, most urgent first

    def add(self, answer: dict[str, object], row: int | None = None) -> None:
        """Count one answer (``RoutingAnswer`` fields, as batch tagging carries them) of input row ``row``."""
        self.rows += 1
        if answer["error"]:
            self.errors += 1
            return
        self.tagged += 1
        self.needs_review += int(bool(answer["needs_review"]))
        self.topics[answer["topic"]] += 1
        urgency = answer.get("urgency")
        if isinstance(urgency, dict) and (level := urgency.get("level")) in URGENCY_RANK:
            self._keep_urgent([[URGENCY_RANK[level], row, answer.get("id"), level,
                                list(urgency.get("triggers") or [])]])

    def _keep_urgent(self, rows: list[list]) -> None:
        """The most urgent messages (high before medium, then in file order), at most URGENT_KEPT of them."""
        self.urgent = sorted([*self.urgent, *rows], key=lambda r: (r[0], r[1] if isinstance(r[1], int) else 0))[:URGENT_KEPT]
        self.urgent_counts.update(r[3] for r in rows)

    def merge(self, other: TagSummary) -> None:
        self.rows += other.rows
        self.tagged += other.tagged
        self.errors += other.errors
        self.needs_review += other.needs_review
        self.topics.update(other.topics)
        self._keep_urgent_merged(other)
        seen = set(self.columns)
        self.columns.extend(c for c in other.columns if c not in seen)

    def _keep_urgent_merged(self, other: TagSummary) -> None:
        counts = self.urgent_counts + other.urgent_counts
        self._keep_urgent(other.urgent)
        self.urgent_counts = counts

    def to_state(self) -> dict[str, object]:
        return {"rows": self.rows, "tagged": self.tagged, "errors": self.errors,
                "needs_review": self.needs_review, "topics": dict(self.topics), "columns": self.columns,
                "urgent_counts": dict(self.urgent_counts), "urgent": self.urgent}

    @classmethod
    def from_state(cls, state: dict) -> TagSummary:
        """The inverse of ``to_state``; ValueError for anything it did not write (a damaged checkpoint)."""
        names = ("rows", "tagged", "errors", "needs_review")
        counts = {k: n for k in names if _is_count(n := state.get(k))}
        topics, columns = state.get("topics"), state.get("columns")
        if (len(counts) != len(names) or counts["rows"] != counts["tagged"] + counts["errors"]
                or not isinstance(topics, dict) or not all(_is_count(n) for n in topics.values())
                or not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
            raise ValueError(f"not a chunk summary: {str(state)[:200]}")
        urgent, urgent_counts = state.get("urgent", []), state.get("urgent_counts", {})  # absent: an older checkpoint
        if not isinstance(urgent, list) or not isinstance(urgent_counts, dict):
            raise ValueError(f"not a chunk summary: {str(state)[:200]}")
        return cls(**counts, topics=Counter(topics), columns=list(columns), urgent=urgent,
                   urgent_counts=Counter(urgent_counts))

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "tagged": self.tagged,
            "errors": self.errors,
            "needs_review_share": round(self.needs_review / self.tagged, 4) if self.tagged else 0.0,
            "topics": dict(sorted(self.topics.items())),
            "urgent": {level: self.urgent_counts.get(level, 0) for level in URGENCY_RANK},
            "most_urgent": [{"row": row, "id": id_, "level": level, "triggers": triggers}
                            for _rank, row, id_, level, triggers in self.urgent],
            **({"resumed_rows": self.resumed_rows} if self.resumed_rows else {}),
            **({"unwritable_characters": self.unwritable_chars} if self.unwritable_chars else {}),
        }


def _is_count(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0
