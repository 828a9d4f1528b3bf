"""The taxonomy as the API shows it (GET /v1/taxonomy)."""

from __future__ import annotations

from typing import Any

from chuishao.taxonomy import Taxonomy


def taxonomy_view(tax: Taxonomy) -> dict[str, object]:
    """Every topic has the same fields whatever the taxonomy: the operator page reads them all."""
    if tax.is_free:  # --taxonomy none: no areas, departments or sub-problems, so empty ones
        topics: list[dict[str, Any]] = [{"code": c, "name": c, "area": None, "lead": None, "assist": [], "subs": []}
                                        for c in tax.labels]
        return {**tax.summary(), "areas": [], "topics": topics, "departments": []}
    areas: list[dict[str, Any]] = [{
        "code": a.code, "name": a.name, "name_en": a.name_en,
        "topics": [{"code": t.code, "name": t.name, "name_en": t.name_en, "lead": t.lead, "assist": list(t.assist),
                    "subs": [{"code": s.code, "name": s.name} for s in t.subs]} for t in a.topics],
    } for a in tax.areas]
    topics = [{"code": t["code"], "name": t["name"], "area": a["code"], "lead": t["lead"], "assist": t["assist"],
               "subs": t["subs"]} for a in areas for t in a["topics"]]
    if tax.other is not None:
        o = tax.other
        topics.append({"code": o.code, "name": o.name, "area": None, "lead": o.lead or None,
                       "assist": list(o.assist), "subs": []})
    departments = sorted({d for t in topics for d in [t["lead"], *t["assist"]] if d})
    return {**tax.summary(), "areas": areas, "topics": topics, "departments": departments}
