"""A user's module without ``from __future__ import annotations``: the column annotations
are evaluated when the class is declared, so at run time they are relplan's DataType
values, while a type checker reads them as columns."""

import relplan as rp


class Clicks(rp.Source):
    user_id: rp.Int64 = rp.key()
    page: rp.String
    dwell: rp.Float64
    ts: rp.Timestamp = rp.event_time()


@rp.transformation()
def long_dwell_pages(clicks: Clicks, window: rp.WindowSpec) -> rp.FeatureBody:
    slow: rp.Series = clicks.dwell > 30.0
    return clicks[slow & (clicks.page != "home")].groupby("user_id")["page"].window(window).count_distinct()


def feature() -> rp.Feature:
    return long_dwell_pages(window=rp.tumbling("1d"), name="long_dwell_pages_daily")


column_types: tuple[object, ...] = (rp.Int64, rp.Float64, rp.String, rp.Bool, rp.Timestamp, rp.Date)
