"""How the reports write a number, a ratio and a table."""

from __future__ import annotations

import math

import pandas as pd


def fmt(x: float | None, digits: int = 2) -> str:
    """`x` with thousands separators; `–` when missing, `nan` when undefined (a correlation of constant predictions)."""
    if x is None:
        return "–"
    return "nan" if math.isnan(x) else f"{x:,.{digits}f}"


def ratio(num: float | None, den: float | None, digits: int = 1) -> str:
    """`num / den` as `12.3x`; below 1, two significant digits (`0.042x`), so slow rows keep their size."""
    if not (num and den):
        return "–"
    r = num / den
    return f"{r:,.{digits}f}x" if r >= 1 else f"{r:.2g}x"


def md(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False) if len(df) else "_(nothing measured)_"

