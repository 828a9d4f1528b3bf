"""Mass-complaint events: reports of the same problem, at the same place, in the same days, as one event.

How two reports join (``group``):
1. **Candidates** by MinHash LSH (analysis/minhash.py): they share a band key, and band keys include the
   row's block, its topic and place key. So a pair is never even compared across topics or places.
2. **Time**: when both reports have a time, they are at most ``window_days`` apart. Reports without a
   time join each other by text, topic and place alone, never a timed report: else one undated report
   would bridge two events months apart (union-find is transitive). ``window_days: null`` turns the
   window off, and then times play no part.
3. **Verified**: their signatures' estimated Jaccard similarity is at least ``threshold``.
Events are then the connected components of the verified pairs (so an event can chain: A~B and B~C
join A and C; with times, an event can so span more than one window).

Unknown place: a report without a place key is in the block of unknown places of its topic: it joins
other reports without a place (by text, topic and time), never one with a known place. A known place
would make such a join a guess, and union-find would let one placeless report bridge two places.

Scale: everything is numpy arrays (signatures uint32, band keys uint64), candidates come from sorting
each band's keys (not a Python dict of buckets), in a bucket each report is compared with its
``max_neighbours`` next reports in time order (so the work is linear in the rows however big a bucket),
and bands are taken one at a time, skipping pairs already joined through earlier bands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.minhash import band_keys, similarity

PLACE_LEVELS = ("district", "street", "community")
_VERIFY_CHUNK = 1 << 16  # pairs per similarity pass (x num_perm x ~10 bytes of temporary memory)


def place_key(place: Mapping[str, object] | str | None, level: str = "street") -> str | None:
    """A row's place key: a string is used as it is; a mapping (``PlaceExtractor.extract``'s answer:
    district, street, community) gives its names down to ``level`` joined by '/', as far as known.
    A report that names only a coarser place gets the coarser key, which matches only the same."""
    if place is None:
        return None
    if isinstance(place, str):
        return place.strip() or None
    if level not in PLACE_LEVELS:
        raise ValueError(f"place level must be one of {', '.join(PLACE_LEVELS)}, not {level!r}")
    parts = []
    for name in PLACE_LEVELS[:PLACE_LEVELS.index(level) + 1]:
        value = place.get(name)
        if value in (None, ""):
            break
        parts.append(str(value))
    return "/".join(parts) or None


def _band_pairs(k: np.ndarray, by_time: np.ndarray, times: np.ndarray, comp: np.ndarray,
                config: EventsConfig) -> np.ndarray:
    """(low, high) row pairs of one band: same key, within the time window, not yet in one event. A row
    is in one bucket per band, so the pairs are unique without a sort."""
    window = config.window_seconds
    order = by_time[np.argsort(k[by_time], kind="stable")]  # by key, then by time (by_time is time-sorted)
    order = order[k[order] != 0]  # rows without a key: empty texts, errors
    ks = k[order]
    found = []
    for d in range(1, min(config.max_neighbours, len(order) - 1) + 1):
        same = ks[:-d] == ks[d:]
        if not same.any():
            break
        a, b = order[:-d][same], order[d:][same]
        ok = comp[a] != comp[b]  # already joined through other pairs: nothing to learn
        if window is not None:
            # within the window, or both without time; one timed and one untimed never join
            gap = np.abs(times[b] - times[a])
            ok &= (gap <= window) | (np.isnan(times[a]) & np.isnan(times[b]))
        found.append(np.stack([a[ok], b[ok]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def linked_pairs(keys: np.ndarray, times: np.ndarray, sigs: np.ndarray, config: EventsConfig) -> np.ndarray:
    """The verified pairs that join the rows into events, band by band: a candidate pair whose rows are
    already in one event (through earlier bands) is not verified again, so big events of near copies
    cost about one band's work, not all of them."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = keys.shape[0]
    by_time = np.argsort(np.where(np.isnan(times), np.inf, times), kind="stable")  # untimed rows last in a bucket
    comp = np.arange(n)
    edges: list[np.ndarray] = []
    for band in range(keys.shape[1]):
        pairs, _ = verified(_band_pairs(keys[:, band], by_time, times, comp, config), sigs, config.threshold)
        if len(pairs):
            edges.append(pairs)
            # merge the components these pairs join: a graph over component labels, relabelled
            graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (comp[pairs[:, 0]], comp[pairs[:, 1]])), shape=(n, n))
            comp = connected_components(graph.tocsr(), directed=False)[1][comp]
    return np.concatenate(edges) if edges else np.empty((0, 2), dtype=np.int64)


def verified(pairs: np.ndarray, sigs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose estimated similarity is at least ``threshold``, and their similarities."""
    sims = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), _VERIFY_CHUNK):
        part = pairs[start:start + _VERIFY_CHUNK]
        sims[start:start + len(part)] = similarity(sigs[part[:, 0]], sigs[part[:, 1]])
    keep = sims >= threshold - 1e-9
    return pairs[keep], sims[keep]


def components(n: int, pairs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Event number per row (0, 1, ... in order of each event's first row); -1 for rows not valid."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    rows = np.flatnonzero(valid)
    np.minimum.at(first, labels[rows], rows)
    used = np.flatnonzero(first < n)
    rank = np.full(len(first), -1, dtype=np.int64)
    rank[used[np.argsort(first[used], kind="stable")]] = np.arange(len(used))
    out = rank[labels]
    out[~valid] = -1
    return out


def group(sigs: np.ndarray, blocks: np.ndarray, times: np.ndarray | None, config: EventsConfig,
          valid: np.ndarray | None = None) -> np.ndarray:
    """Event number per row (see the module's note); rows not ``valid`` (errors) get -1 and join nothing.
    ``times``: seconds (any epoch), NaN where a row has none; None: no row has a time."""
    n = len(sigs)
    if sigs.ndim != 2 or sigs.shape[1] != config.num_perm:
        raise ValueError(f"signatures must be (rows x {config.num_perm}), got {sigs.shape}")
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    times = np.full(n, np.nan) if times is None else np.asarray(times, dtype=np.float64)
    if not (len(blocks) == len(times) == len(valid) == n):
        raise ValueError("signatures, blocks, times and valid must have one entry per row")
    keys = band_keys(sigs, blocks, config.bands)
    keys[~valid] = 0
    return components(n, linked_pairs(keys, times, sigs, config), valid)


def event_id(number: int) -> str | None:
    return None if number < 0 else f"E{number + 1:07d}"


@dataclass
class Event:
    event_id: str
    topic: str | None
    place: str | None
    count: int = 0
    first_time: float | None = None
    last_time: float | None = None
    leads: dict[str, int] = field(default_factory=dict)
    departments: dict[str, int] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)  # the first few report rows (row numbers), for reports

    def whistle_reasons(self, config: EventsConfig) -> list[str]:
        reasons = []
        if self.count >= config.whistle_size:
            reasons.append(f"{self.count} reports >= {config.whistle_size}")
        named = self.departments if config.whistle_count_assist else self.leads
        if len(named) >= config.whistle_departments:
            reasons.append(f"{len(named)} departments >= {config.whistle_departments}")
        return reasons


def summarise(labels: np.ndarray, topics: Sequence[str | None], places: Sequence[str | None],
              times: np.ndarray | None, departments: Iterable[Mapping[str, object] | None],
              row_numbers: Sequence[int] | None = None, keep_rows: int = 20) -> list[Event]:
    """One Event per event number, in event-number order: counts, first/last time, departments named."""
    events: list[Event] = []
    for i, (label, deps) in enumerate(zip(labels.tolist(), departments, strict=True)):
        if label < 0:
            continue
        if label == len(events):
            events.append(Event(event_id=event_id(label) or "", topic=topics[i], place=places[i]))
        ev = events[label]
        ev.count += 1
        if len(ev.rows) < keep_rows:
            ev.rows.append(row_numbers[i] if row_numbers is not None else i)
        t = None if times is None or np.isnan(times[i]) else float(times[i])
        if t is not None:
            ev.first_time = t if ev.first_time is None else min(ev.first_time, t)
            ev.last_time = t if ev.last_time is None else max(ev.last_time, t)
        if deps:
            lead = deps.get("lead")
            if isinstance(lead, str) and lead:
                ev.leads[lead] = ev.leads.get(lead, 0) + 1
                ev.departments[lead] = ev.departments.get(lead, 0) + 1
            assist = deps.get("assist")
            for name in assist if isinstance(assist, list) else []:
                ev.departments[name] = ev.departments.get(name, 0) + 1
    return events
