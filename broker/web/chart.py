"""Exchanges over time as a stacked bar chart, laid out for a server-rendered SVG.

Each bar is one period (an hour when the entries span under two days, else a day);
each band of a bar is one series (a purpose or an agency). Bands carry a pattern
number as well as a colour, and the page repeats every figure in a data table.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Band", "Bar", "Chart", "stack"]

PALETTE = ("#1d70b8", "#d4351c", "#00703c", "#6f3c97", "#b58840", "#28a197", "#505a5f")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 300, 48, 48, 16


@dataclass(frozen=True, slots=True)
class Band:
    series: str
    count: int
    y: float
    height: float
    colour: str
    pattern: int


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    x: float
    width: float
    total: int
    bands: list[Band]


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    period: str
    series: list[tuple[str, str, int]]
    bars: list[Bar]
    ticks: list[tuple[float, int]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = HEIGHT - BOTTOM

    def table(self) -> list[tuple[str, list[int], int]]:
        """Rows of the data table: period, count per series, total."""
        names = [name for name, _, _ in self.series]
        rows = []
        for bar in self.bars:
            counts = {band.series: band.count for band in bar.bands}
            rows.append((bar.label, [counts.get(n, 0) for n in names], bar.total))
        return rows


def _bucket(moment: datetime, hourly: bool) -> datetime:
    if hourly:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def stack(title: str, points: Iterable[tuple[datetime, str]]) -> Chart:
    """A chart of ``points`` (time, series name), one stacked bar per period."""
    items = sorted(points)
    if not items:
        return Chart(title, "day", [], [], [])
    hourly = items[-1][0] - items[0][0] < timedelta(days=2)
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    counts: dict[datetime, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for moment, name in items:
        counts[_bucket(moment, hourly)][name] += 1
        totals[name] += 1
    ranked = [name for name, _ in totals.most_common()]
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ranked)}
    periods: list[datetime] = []
    at, last = _bucket(items[0][0], hourly), _bucket(items[-1][0], hourly)
    while at <= last and len(periods) < 60:
        periods.append(at)
        at += step
    peak = max(sum(c.values()) for c in counts.values())
    # Whole-number gridlines: the axis tops out at a multiple of the step above the peak.
    tick = max(1, math.ceil(peak / 4))
    peak = tick * math.ceil(peak / tick)
    plot_h = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - 8) / max(len(periods), 1)
    bars = []
    for i, period in enumerate(periods):
        y = float(HEIGHT - BOTTOM)
        bands = []
        for name in ranked:
            count = counts[period][name]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            bands.append(Band(name, count, y, h, colours[name], ranked.index(name) % 4))
        label = period.strftime("%H:00 %d %b" if hourly else "%d %b")
        bars.append(
            Bar(
                label, LEFT + i * slot + slot * 0.15, slot * 0.7, sum(b.count for b in bands), bands
            )
        )
    ticks = [(HEIGHT - BOTTOM - plot_h * k / peak, k) for k in range(0, peak + 1, tick)]
    series = [(name, colours[name], totals[name]) for name in ranked]
    return Chart(title, "hour" if hourly else "day", series, bars, ticks)
