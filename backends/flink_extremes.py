"""first/last on Flink: MIN/MAX over an order-preserving string of (event time, value).

Flink SQL has no ARG_MIN/ARG_MAX, and FIRST_VALUE/LAST_VALUE follow the order rows
reach the aggregate, not event time. But MIN and MAX of a VARCHAR run everywhere an
aggregate does (GROUP BY, window TVFs, OVER frames in batch and streaming, where
leaving rows are retracted), and compare strings by code point. So each value is
encoded as a string whose order is the order of (time, value):

    key = LPAD(time in epoch microseconds + 10^17, 18 digits) || value's encoding

MIN(key) is the earliest time and, among values at that time, the smallest one: the
IR's ``first``; MAX(key) is ``last``. The value is decoded from the rest of the key.
Each value encoding is order-preserving and exact (a property test holds MIN/MAX of
the keys against Python's order, and every round trip, on Flink):

- String: the string itself (it is the key's last part, so a prefix sorts first);
- Int64: ``v + 2^63`` as 20 digits (in DECIMAL, no overflow);
- Timestamp: epoch microseconds + 10^17 as 18 digits (years 0000-9999 fit);
- Date: ``YYYY-MM-DD``; Bool: ``0``/``1``;
- Float64: a sign class (-inf, negative, zero, positive, +inf), then the binary
  exponent and the 52-bit fraction as digits, both inverted for negative numbers.
  The exponent is ``FLOOR(LOG2(|x|))`` corrected by one either way against exact
  powers of two, so the fraction ``|x| / 2^e - 1`` scaled by 2^52 is an exact integer
  (subnormals included); decoding multiplies back by 2^e, exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from relplan.backends.sql import lit, paren
from relplan.ir import types as T

TIME_DIGITS = 18
_TIME_SHIFT = 10**17  # epoch microseconds from year 0000 on are positive after the shift
_INT_SHIFT = 2**63
_FRACTION = 2**52
_EXP_SHIFT = 1074  # the smallest binary exponent of a (subnormal) double
_EXP_MAX = 1023 + _EXP_SHIFT


def _call(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _string(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build("VARCHAR"))


def _digits(e: exp.Expression, width: int) -> exp.Expression:
    """A non-negative integer as exactly ``width`` digits (so strings order as numbers)."""
    return _call("LPAD", _string(e), lit(width), exp.Literal.string("0"))


def _cast(e: exp.Expression, sql_type: str) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build(sql_type))


def _concat(*parts: exp.Expression) -> exp.Expression:
    out = parts[0]
    for p in parts[1:]:
        out = exp.DPipe(this=out, expression=p)
    return out


def _case(whens: list[tuple[exp.Expression, exp.Expression]], otherwise: exp.Expression) -> exp.Expression:
    case = exp.Case()
    for cond, value in whens:
        case = case.when(cond, value, copy=False)
    return case.else_(otherwise, copy=False)


def _pow2(e: exp.Expression) -> exp.Expression:
    return _call("POWER", _cast(lit(2), "DOUBLE"), e)


def _double(text: str) -> exp.Expression:
    return _cast(exp.Literal.string(text), "DOUBLE")


def time_key(epoch_us: exp.Expression) -> exp.Expression:
    return _digits(exp.Add(this=paren(epoch_us), expression=lit(_TIME_SHIFT)), TIME_DIGITS)


def _float_key(x: exp.Expression) -> exp.Expression:
    ax = _call("ABS", x)
    e0 = _cast(_call("FLOOR", _call("LOG2", ax.copy())), "INT")
    e = exp.Sub(
        this=paren(e0),
        expression=paren(_case(
            [(exp.LT(this=ax.copy(), expression=_pow2(e0.copy())), lit(1)),
             (exp.GTE(this=ax.copy(), expression=_pow2(exp.Add(this=e0.copy(), expression=lit(1)))), exp.Neg(this=lit(1)))],
            lit(0),
        )),
    )
    scaled = exp.Div(this=ax.copy(), expression=_pow2(paren(e)))
    fraction = _cast(exp.Mul(this=paren(exp.Sub(this=scaled, expression=lit(1))), expression=lit(_FRACTION)), "BIGINT")
    biased = exp.Add(this=paren(e.copy()), expression=lit(_EXP_SHIFT))
    positive = _concat(exp.Literal.string("3"), _digits(biased, 4), _digits(fraction, 16))
    negative = _concat(
        exp.Literal.string("1"),
        _digits(exp.Sub(this=lit(_EXP_MAX), expression=paren(biased.copy())), 4),
        _digits(exp.Sub(this=lit(_FRACTION - 1), expression=paren(fraction.copy())), 16),
    )
    return _case(
        [
            (exp.EQ(this=x.copy(), expression=lit(0)), exp.Literal.string("2")),
            (exp.EQ(this=x.copy(), expression=_double("Infinity")), exp.Literal.string("4")),
            (exp.EQ(this=x.copy(), expression=_double("-Infinity")), exp.Literal.string("0")),
            (exp.GT(this=x.copy(), expression=lit(0)), positive),
        ],
        negative,
    )


def _float_value(s: exp.Expression) -> exp.Expression:
    sign = _call("SUBSTR", s, lit(1), lit(1))
    biased = _cast(_call("SUBSTR", s.copy(), lit(2), lit(4)), "INT")
    fraction = _cast(_call("SUBSTR", s.copy(), lit(6)), "BIGINT")

    def magnitude(b: exp.Expression, f: exp.Expression) -> exp.Expression:
        m = exp.Add(this=lit(1), expression=exp.Div(this=_cast(f, "DOUBLE"), expression=_double(str(float(_FRACTION)))))
        return exp.Mul(this=paren(m), expression=_pow2(exp.Sub(this=b, expression=lit(_EXP_SHIFT))))

    negative = exp.Neg(this=paren(magnitude(
        paren(exp.Sub(this=lit(_EXP_MAX), expression=biased.copy())),
        paren(exp.Sub(this=lit(_FRACTION - 1), expression=fraction.copy())),
    )))
    return _case(
        [
            (exp.EQ(this=sign, expression=exp.Literal.string("2")), _cast(lit(0), "DOUBLE")),
            (exp.EQ(this=sign.copy(), expression=exp.Literal.string("4")), _double("Infinity")),
            (exp.EQ(this=sign.copy(), expression=exp.Literal.string("0")), _double("-Infinity")),
            (exp.EQ(this=sign.copy(), expression=exp.Literal.string("3")), magnitude(biased, fraction)),
        ],
        negative,
    )


def value_key(
    v: exp.Expression, dtype: T.DataType, epoch_us: Callable[[exp.Expression], exp.Expression]
) -> exp.Expression:
    """``v`` (not NULL) as a string ordered as the values are."""
    if dtype == T.String:
        return v
    if dtype == T.Int64:
        shifted = exp.Add(this=_cast(v, "DECIMAL(20, 0)"), expression=_cast(exp.Literal.string(str(_INT_SHIFT)), "DECIMAL(20, 0)"))
        return _digits(shifted, 20)
    if dtype == T.Bool:
        return _case([(v, exp.Literal.string("1"))], exp.Literal.string("0"))
    if dtype == T.Timestamp:
        return time_key(epoch_us(v))
    if dtype == T.Date:
        return _string(v)
    if dtype == T.Float64:
        return _float_key(v)
    raise AssertionError(f"no order-preserving key for {dtype}")  # the IR has no other types


def value_of(
    key: exp.Expression, dtype: T.DataType, from_epoch_us: Callable[[exp.Expression], exp.Expression]
) -> exp.Expression:
    """The value a MIN/MAX of keys (NULL: none) encodes."""
    s = _call("SUBSTR", key, lit(TIME_DIGITS + 1))
    if dtype == T.String:
        return s
    if dtype == T.Int64:
        decimal = exp.Sub(this=_cast(s, "DECIMAL(20, 0)"), expression=_cast(exp.Literal.string(str(_INT_SHIFT)), "DECIMAL(20, 0)"))
        return _cast(decimal, "BIGINT")
    if dtype == T.Bool:
        return exp.EQ(this=s, expression=exp.Literal.string("1"))
    if dtype == T.Timestamp:
        return from_epoch_us(exp.Sub(this=_cast(s, "BIGINT"), expression=lit(_TIME_SHIFT)))
    if dtype == T.Date:
        return _cast(s, "DATE")
    if dtype == T.Float64:
        return _float_value(s)
    raise AssertionError(f"no order-preserving key for {dtype}")
