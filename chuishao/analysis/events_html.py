"""``chuishao events --html``: the events of a backlog as one self-contained page (styles inline, no
external resource, no script), in the style of the evaluation report.

It shows the counts (labelled for readers), why rows were errors (rows per reason), the whistle candidates,
the biggest events (with a masked excerpt of their first report), events by street and topic, and a map-free
heat table (street x topic: reports in events of two or more). Personal data (phones, ID and card numbers,
e-mails) is masked in every text shown.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence

from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.report_html import _CSS
from chuishao.pipeline.privacy import mask_pii_raw

BIGGEST = 30
HEAT_PLACES = 40  # rows of the heat table: the places with the most reports in events
UNKNOWN = "(unknown place)"
# The headline's cards: the counts' keys (batch.events.EventsResult.as_dict) as a reader would name them.
LABELS = {"rows": "rows read", "errors": "rows with errors", "events": "events",
          "events_of_2_or_more": "events of 2+ reports", "reports_in_them": "reports in those events",
          "largest": "largest event (reports)", "whistle_candidates": "whistle candidates (吹哨)"}


def _e(value: object) -> str:
    return html.escape(mask_pii_raw(str(value)) if value is not None else "")


def _street(place: object) -> str:
    """The heat table's row: the place key down to the street (district/street), or the key as it is."""
    if not place:
        return UNKNOWN
    return "/".join(str(place).split("/")[:2])


def _cell(count: int, top: int) -> str:
    if not count:
        return '<td class="num"></td>'
    alpha = 0.12 + 0.78 * count / top if top else 0
    return f'<td class="num" style="background:rgba(228,87,86,{alpha:.2f})">{count}</td>'


def events_html(rows: Sequence[Mapping[str, object]], counts: Mapping[str, object], config: EventsConfig,
                title: str = "chuishao events") -> str:
    """The page for the summary rows (``batch.events.summary_rows``, biggest first)."""
    multi = [r for r in rows if int(r["count"]) > 1]  # type: ignore[call-overload]
    whistle = [r for r in rows if r["whistle"]]
    topic_names = {str(r["topic"]): str(r.get("topic_name") or r["topic"]) for r in rows}
    by_cell: Counter[tuple[str, str]] = Counter()
    by_place: Counter[str] = Counter()
    events_by_place: Counter[str] = Counter()
    for r in multi:
        street, topic = _street(r["place"]), str(r["topic"])
        by_cell[street, topic] += int(r["count"])  # type: ignore[call-overload]
        by_place[street] += int(r["count"])  # type: ignore[call-overload]
        events_by_place[street] += 1
    places = [p for p, _ in by_place.most_common(HEAT_PLACES)]
    topics = sorted({t for _, t in by_cell})
    top = max(by_cell.values(), default=0)

    out = ['<!doctype html><html lang="zh"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
           f"<h1>{_e(title)}</h1><div class=\"sub\">threshold {config.threshold} · window "
           f"{'none' if config.window_days is None else f'{config.window_days:g} days'} · whistle at "
           f"{config.whistle_size} reports or {config.whistle_departments} departments</div>",
           _cards(counts)]
    out.append(_errors_table(counts))

    out.append(f"<h2>Whistle candidates ({len(whistle)})</h2>")
    out.append(_events_table(whistle[:BIGGEST]) if whistle else '<div class="note ok">none</div>')
    out.append(f"<h2>Biggest events ({min(BIGGEST, len(multi))} of {len(multi)} with two reports or more)</h2>")
    out.append(_events_table(multi[:BIGGEST]) if multi else '<div class="note">no two reports were grouped</div>')

    out.append("<h2>Heat table: reports in events, street × topic</h2>")
    if places:
        out.append("<div style=\"overflow-x:auto\"><table><tr><th>street</th>"
                   + "".join(f"<th title=\"{_e(topic_names.get(t, t))}\">{_e(t)}<br><small>{_e(topic_names.get(t, t))}"
                             f"</small></th>" for t in topics) + "<th>all</th></tr>")
        for p in places:
            out.append(f"<tr><td>{_e(p)}</td>" + "".join(_cell(by_cell[p, t], top) for t in topics)
                       + f'<td class="num"><b>{by_place[p]}</b></td></tr>')
        out.append("</table></div>")
    else:
        out.append('<div class="note">no events of two reports or more</div>')

    out.append("<h2>Events by street</h2><table><tr><th>street</th><th>events (2+ reports)</th><th>reports in them</th></tr>")
    out.extend(f'<tr><td>{_e(p)}</td><td class="num">{events_by_place[p]}</td><td class="num">{by_place[p]}</td></tr>'
               for p in places)
    out.append("</table>")
    by_topic: Counter[str] = Counter()
    reports_by_topic: Counter[str] = Counter()
    for r in multi:
        by_topic[str(r["topic"])] += 1
        reports_by_topic[str(r["topic"])] += int(r["count"])  # type: ignore[call-overload]
    out.append("<h2>Events by topic</h2><table><tr><th>topic</th><th>events (2+ reports)</th><th>reports in them</th></tr>")
    out.extend(f'<tr><td>{_e(t)} {_e(topic_names.get(t, t))}</td><td class="num">{n}</td>'
               f'<td class="num">{reports_by_topic[t]}</td></tr>' for t, n in by_topic.most_common())
    out.append("</table></main></body></html>")
    return "\n".join(out)


def _cards(counts: Mapping[str, object]) -> str:
    """The headline: one card per count, labelled for readers (timings and the reasons are not counts)."""
    cards = (f'<div class="card"><b>{_e(counts[k])}</b><span>{_e(label)}</span></div>'
             for k, label in LABELS.items() if k in counts)
    return '<div class="cards">' + "".join(cards) + "</div>"


def _errors_table(counts: Mapping[str, object]) -> str:
    """Why rows were errors: rows per reason (``batch.events.error_reason``), most first; nothing when none."""
    reasons = counts.get("error_reasons")
    if not isinstance(reasons, Mapping) or not reasons:
        return ""
    body = "".join(f'<tr><td>{_e(why)}</td><td class="num">{_e(n)}</td></tr>' for why, n in reasons.items())
    return (f"<h2>Rows with errors ({_e(counts.get('errors', sum(reasons.values())))})</h2>"
            f"<table><tr><th>why</th><th>rows</th></tr>{body}</table>")


def _events_table(rows: Sequence[Mapping[str, object]]) -> str:
    head = ("<table><tr><th>event</th><th>reports</th><th>topic</th><th>place</th><th>first – last</th>"
            "<th>departments</th><th>why a whistle</th><th>first report (masked)</th></tr>")
    body = []
    for r in rows:
        deps = r.get("departments") or []
        reasons = r.get("whistle_reasons") or []
        body.append(
            f"<tr><td>{_e(r['event_id'])}</td><td class=\"num\">{_e(r['count'])}</td>"
            f"<td>{_e(r['topic'])} {_e(r.get('topic_name') or '')}</td><td>{_e(r['place'] or UNKNOWN)}</td>"
            f"<td>{_e(r['first_time'] or '')} – {_e(r['last_time'] or '')}</td>"
            f"<td>{_e('、'.join(map(str, deps)))}</td>"  # type: ignore[call-overload]
            f"<td>{_e('; '.join(map(str, reasons)))}</td>"  # type: ignore[call-overload]
            f"<td class=\"text\">{_e(r.get('example') or '')}</td></tr>")
    return head + "".join(body) + "</table>"
