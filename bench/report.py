"""The figures of one run: one table on stdout, the same as JSON under bench/results/.

Columns (bench/README.md says more): req/s at the highest concurrency and its ratio to the
bare ``{ hello }`` measured in the same run; p50/p90/p99 per concurrency; upstream calls per
operation next to the minimum; the latency the gateway adds over the POS; errors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Level:
    concurrency: int
    driver: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int
    replays: int


@dataclass
class Result:
    name: str
    target: str
    read: bool
    levels: list[Level] = field(default_factory=list)
    ratio_to_hello: float | None = None
    calls_per_op: float = 0.0
    calls_by_pos: dict[str, float] = field(default_factory=dict)
    calls_by_route: dict[str, float] = field(default_factory=dict)
    minimum_calls: int = 0
    minimum_critical: int = 0
    minimum_why: str = ""
    counted_requests: int = 0
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    added_method: str = ""
    errors: int = 0
    first_error: str = ""
    baseline_rps: list[float] = field(default_factory=list)
    """{ hello } only: req/s of its first and last runs (the better one is kept)."""

    def repeated_gets(self) -> dict[str, float]:
        """GET routes called more than once per operation: the same resource read twice, or
        the same route for other ids (three name searches): the JSON's calls_by_route tells."""
        return {route: calls for route, calls in self.calls_by_route.items()
                if " GET " in route and calls > 1.05}  # fmt: skip

    def level(self, concurrency: int) -> Level | None:
        return next((lv for lv in self.levels if lv.concurrency == concurrency), None)

    @property
    def top(self) -> Level | None:
        return max(self.levels, key=lambda lv: lv.concurrency, default=None)


@dataclass
class Rss:
    requests: int
    cold_kib: int
    before_kib: int
    after_kib: int
    scenarios: list[str]

    @property
    def growth_pct(self) -> float:
        return (self.after_kib - self.before_kib) / self.before_kib * 100


@dataclass
class Run:
    command: str
    started_at: str
    upstream_latency_ms: int
    duration_s: float
    concurrency: list[int]
    driver: str
    cpus: int
    results: list[Result] = field(default_factory=list)
    rss: Rss | None = None
    gateway_log: list[str] = field(default_factory=list)
    """The gateway's last log lines, when any request failed."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.rss is not None:
            data["rss"]["growth_pct"] = round(self.rss.growth_pct, 2)
        return data


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(run: Run) -> str:
    levels = sorted(run.concurrency)
    head = ["scenario", "req/s", "x hello"]
    head += [f"c{c} p50/p90/p99 ms" for c in levels]
    head += ["calls/op (min)", "added p50/p99 ms", "errors"]
    rows = [head]
    for result in run.results:
        top = result.top
        ratio = result.ratio_to_hello
        row = [result.name, f"{top.rps:.0f}" if top else "-",
               "-" if ratio is None else f"{ratio:.2f}"]  # fmt: skip
        for concurrency in levels:
            level = result.level(concurrency)
            row.append("-" if level is None else
                       f"{level.p50_ms:.1f}/{level.p90_ms:.1f}/{level.p99_ms:.1f}")  # fmt: skip
        calls = f"{result.calls_per_op:.2f} ({result.minimum_calls})"
        if result.calls_per_op > result.minimum_calls + 0.005:
            calls += " !"
        row.append(calls)
        added = f"{_ms(result.added_p50_ms)}/{_ms(result.added_p99_ms)}"
        row.append(added + (" *" if result.added_method == "estimate" else ""))
        replays = sum(level.replays for level in result.levels)
        row.append(f"{result.errors}" + (f" ({replays} replayed)" if replays else ""))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [
        "",
        f"req/s at c{levels[-1]}; x hello: its ratio to {{ hello }} in this run (the better of "
        f"its first and last runs: {' and '.join(f'{r:.0f}' for r in run.results[0].baseline_rps)}"
        " req/s). "
        f"Upstream latency {run.upstream_latency_ms} ms, {run.duration_s:g} s per level, "
        f"driver {run.driver}, {run.cpus} CPUs.",
        "! more upstream calls than the minimum. * added latency estimated as total minus "
        "latency x sequential calls (no Server-Timing upstream from the gateway).",
    ]
    if run.rss is not None:
        rss = run.rss
        notes.append(
            f"RSS of the gateway: {rss.before_kib / 1024:.1f} MiB before, "
            f"{rss.after_kib / 1024:.1f} MiB after {rss.requests:,} requests "
            f"({', '.join(rss.scenarios)} in turn): {rss.growth_pct:+.1f}% "
            f"(at start {rss.cold_kib / 1024:.1f} MiB)."
        )
    for result in run.results:
        if repeated := result.repeated_gets():
            said = ", ".join(f"{route} x{calls:g}" for route, calls in repeated.items())
            notes.append(f"{result.name}: GET routes per op: {said}")
    for result in run.results:
        if result.first_error:
            notes.append(f"{result.name}: first error: {result.first_error[:200]}")
    if run.gateway_log:
        notes += ["gateway log, last lines:", *(f"  {line[:300]}" for line in run.gateway_log)]
    notes.append(f"reproduce: {run.command}")
    return "\n".join(lines + notes)


def write(run: Run) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps(run.to_json(), indent=2) + "\n")
    return path
