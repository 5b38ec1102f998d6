"""Matplotlib figures as inline SVG for report.html (the Agg backend: no display needed)."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def to_svg(fig: Any) -> str:
    """The figure as SVG without the XML prolog, so it can sit inline in HTML; closes the figure."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    pyplot().close(fig)
    return buf.getvalue().split("?>", 1)[-1]
