"""Mistakes a type checker must catch in a user's features module.

Not run: tests/test_typecheck.py type-checks it and expects exactly the errors marked
``# E: <code>`` on their lines, and no other (proof that the strict check has teeth).
"""

from __future__ import annotations

import relplan as rp


class Transactions(rp.Source):
    account_id: rp.Int64 = rp.key()
    amt: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def window_as_text(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx.groupby("account_id").window("1h").count()  # E: arg-type


@rp.transformation
def misspelt_column(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    big = tx.amount > 100  # E: attr-defined
    print(big)
    return tx.groupby("account_id").window(wspec).count()


@rp.transformation
def no_aggregate(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx.groupby("account_id").window(wspec)  # E: return-value


def returns_a_column(tx: Transactions, wspec: rp.WindowSpec) -> rp.Series:
    return tx.amt * 2


not_a_feature_function = rp.transformation(returns_a_column)  # E: arg-type


@rp.transformation
def bad_arguments(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    keyed = tx.groupby(42)  # E: arg-type
    ranged = tx[tx.amt.between(1, 2, inclusive="all")]  # E: arg-type
    shifted = tx[tx.ts > object()]  # E: operator
    print(keyed, ranged, shifted)
    return tx.groupby("account_id").window(wspec).agg(total=("amt",))  # E: arg-type


feature = window_as_text(window="1d")  # E: arg-type
durations = rp.sliding(3600)  # E: arg-type
uncalled: rp.Feature = misspelt_column  # E: assignment
tagged = rp.transformation(tags=[1, 2])  # E: list-item
