"""A step chart as inline SVG: no JavaScript, no charting library, nothing to download.

The numbers drawn are floats (pixels); every number printed on a page comes from
`powerhive.units`, exactly. The chart shows each value from its change until the next one
(the ledger's `D` and `R` hold between reports), and up to the chain's latest block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 170
LEFT, RIGHT, TOP, BOTTOM = 92, 12, 22, 26


def step_chart(
    points: Sequence[tuple[int, int]],
    *,
    until: int,
    title: str,
    label: Callable[[int], str],
    scale: int,
    css_class: str = "",
) -> Markup:
    """`points` are (unix time, value in base units) oldest first; `scale` base units per
    drawn unit (10**18 for kWh); `label` formats a base-unit value for the axis."""
    head = (
        f'<svg class="chart {escape(css_class)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{LEFT}" y="14" class="title">{escape(title)}</text>'
    )
    if not points:
        return Markup(
            head + f'<text x="{LEFT}" y="{HEIGHT // 2}" class="empty">no changes yet</text></svg>'
        )
    t0 = points[0][0]
    t1 = max(until, points[-1][0], t0 + 1)
    values = [v for _, v in points] + [0]
    lo, hi = min(values), max(values)
    if lo == hi:
        hi = lo + scale
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: int) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: int) -> float:
        return TOP + (hi - v) / (hi - lo) * plot_h

    path = []
    for i, (t, v) in enumerate(points):
        end = points[i + 1][0] if i + 1 < len(points) else t1
        path.append(f"{x(t):.1f},{y(v):.1f} {x(end):.1f},{y(v):.1f}")
    zero = y(0)
    parts = [
        head,
        f'<line x1="{LEFT}" y1="{zero:.1f}" x2="{WIDTH - RIGHT}" y2="{zero:.1f}" class="zero"/>',
        f'<polyline points="{" ".join(path)}" class="line"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" class="axis" text-anchor="end">'
        f"{escape(label(hi))}</text>",
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" class="axis" text-anchor="end">'
        f"{escape(label(lo))}</text>",
        f'<text x="{LEFT}" y="{HEIGHT - 8}" class="axis">{_clock(t0)}</text>',
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" class="axis" text-anchor="end">'
        f"{_clock(t1)}</text>",
        "</svg>",
    ]
    return Markup("".join(parts))


def _clock(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
