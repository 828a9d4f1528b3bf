"""Counts for a tagging run: mergeable per chunk, so a resumed run still reports the whole file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TypeGuard


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

    def add(self, answer: dict[str, object]) -> None:
        """Count one answer (``RoutingAnswer`` fields, as batch tagging carries them)."""
        self.rows += 1
        if answer["error"]:
            self.errors += 1
            return
        self.tagged += 1
        self.needs_review += int(bool(answer["needs_review"]))
        self.topics[answer["topic"]] += 1

    def merge(self, other: TagSummary) -> None:
        self.rows += other.rows
        self.tagged += other.tagged
        self.errors += other.errors
        self.needs_review += other.needs_review
        self.topics.update(other.topics)
        seen = set(self.columns)
        self.columns.extend(c for c in other.columns if c not in seen)

    def to_state(self) -> dict[str, object]:
        return {"rows": self.rows, "tagged": self.tagged, "errors": self.errors,
                "needs_review": self.needs_review, "topics": dict(self.topics), "columns": self.columns}

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
        return cls(**counts, topics=Counter(topics), columns=list(columns))

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "tagged": self.tagged,
            "errors": self.errors,
            "needs_review_share": round(self.needs_review / self.tagged, 4) if self.tagged else 0.0,
            "topics": dict(sorted(self.topics.items())),
            **({"resumed_rows": self.resumed_rows} if self.resumed_rows else {}),
            **({"unwritable_characters": self.unwritable_chars} if self.unwritable_chars else {}),
        }


def _is_count(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0
