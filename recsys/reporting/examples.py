"""Example recommendations of a few users with titles and explanations (for ``recsys run``'s summary)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import functions as F

from recsys.lakehouse import TableStore
from recsys.schemas import PAD_ITEM, Col, Tables


@dataclass
class Example:
    user_id: str
    user_idx: int
    model_version: str
    history: list[str] = field(default_factory=list)  # titles, most recent last
    recs: list[tuple[int, str, float, str | None, float | None]] = field(default_factory=list)


def example_recommendations(store: TableStore, run_date: dt.date, users: int = 3,
                            history_shown: int = 5) -> list[Example]:
    """The first ``users`` users (by user_idx) of the run date's recommendations; a few small collects."""
    recs = store.read(Tables.RECOMMENDATIONS).where(F.col(Col.RUN_DATE) == F.lit(run_date).cast("date"))
    chosen = [r[0] for r in recs.select(Col.USER_IDX).distinct().orderBy(Col.USER_IDX).limit(users).collect()]
    if not chosen:
        return []
    rows = recs.where(F.col(Col.USER_IDX).isin(chosen)).orderBy(Col.USER_IDX, Col.RANK).collect()
    histories: dict[int, list[int]] = {}
    if store.exists(Tables.USER_HISTORIES):
        for r in store.read(Tables.USER_HISTORIES).where(F.col(Col.USER_IDX).isin(chosen)).collect():
            histories[r[Col.USER_IDX]] = [i for i in (r[Col.HISTORY] or []) if i != PAD_ITEM][-history_shown:]
    wanted = {r[Col.ITEM_IDX] for r in rows} | {r["explanation_item_idx"] for r in rows
                                                if r["explanation_item_idx"] is not None}
    wanted |= {i for h in histories.values() for i in h}
    titles: dict[int, str] = {}
    if store.exists(Tables.ITEMS) and wanted:
        items = store.read(Tables.ITEMS).where(F.col(Col.ITEM_IDX).isin(sorted(wanted)))
        titles = {r[0]: r[1] for r in items.select(Col.ITEM_IDX, Col.TITLE).collect()}
    out: dict[int, Example] = {}
    for r in rows:
        ex = out.setdefault(r[Col.USER_IDX], Example(
            r[Col.USER_ID] or "", r[Col.USER_IDX], r[Col.MODEL_VERSION] or "",
            [titles.get(i, f"item {i}") for i in histories.get(r[Col.USER_IDX], [])]))
        expl = r["explanation_item_idx"]
        ex.recs.append((r[Col.RANK], titles.get(r[Col.ITEM_IDX], r[Col.ITEM_ID] or str(r[Col.ITEM_IDX])),
                        float(r[Col.SCORE]), None if expl is None else titles.get(expl, f"item {expl}"),
                        r["explanation_similarity"]))
    return [out[u] for u in chosen if u in out]


def format_examples(examples: list[Example]) -> str:
    lines = []
    for ex in examples:
        lines.append(f"user {ex.user_id[:12]}… (user_idx {ex.user_idx}, model {ex.model_version})")
        lines.append("  recently: " + ("; ".join(ex.history) if ex.history else "(no history)"))
        for rank, title, score, expl, sim in ex.recs:
            because = f"  <- similar to {expl!r} ({sim:.2f})" if expl is not None and sim is not None else ""
            lines.append(f"  {rank:>2}. {title} [{score:.3f}]{because}")
    return "\n".join(lines) if lines else "(no recommendations)"
