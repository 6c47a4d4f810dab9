"""``uv run python -m bench``: start the stack, measure every scenario, print and keep it.

Per scenario, in order: a warm-up (caches, connections); a counted run at concurrency 1 with
the Python driver (sandbox counters read before and after: upstream calls per operation;
each response's time against ``Server-Timing``: the added latency); then a timed run at each
concurrency with wrk (or the Python driver). Last, the gateway's RSS before and after
``--rss-requests`` reads. bench/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import pools, report
from bench.drivers import WRK, Load, Outcome, percentile, run
from bench.report import Level, Result, Rss
from bench.scenarios import Scenario, scenarios
from bench.stack import Stack, boot, rss_kib

WARM = 10


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds per scenario and concurrency (default 10)",
    )
    parser.add_argument(
        "--scenario",
        nargs="+",
        metavar="NAME",
        help="only these (hello always runs: it is the baseline)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 16],
        metavar="N",
        help="requests in flight, one timed run each (default 1 16)",
    )
    parser.add_argument(
        "--upstream-latency-ms",
        type=int,
        default=0,
        help="added to every POS request by both sandboxes (default 0)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=100,
        help="requests in the counted run (calls/op, added latency)",
    )
    parser.add_argument(
        "--rss-requests",
        type=int,
        default=100_000,
        help="reads between the two RSS readings (default 100000; 0: skip)",
    )
    parser.add_argument(
        "--pool-rate",
        type=float,
        default=250.0,
        help="req/s a write scenario is prepared for (fresh orders, sales)",
    )
    parser.add_argument(
        "--python-driver",
        action="store_true",
        help="drive with Python (a separate process) even if wrk is installed",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="record the gateway with py-spy during the timed runs (a flame graph, .svg; "
        "collapsed stacks, .txt)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2 s per level, 10 counted, 2000 RSS requests",
    )
    args = parser.parse_args(argv)
    known = list(scenarios("-"))  # the names, before anything starts
    if unknown := [name for name in args.scenario or () if name not in known]:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(known)}")
    if args.quick:
        args.duration, args.count, args.rss_requests = 2.0, 10, min(args.rss_requests, 2000)
    return args


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.python = bool(args.python_driver or not WRK)
        self.prefix = secrets.token_hex(4)
        answer = httpx.post(f"{stack.gateway}/graphql", headers=stack.headers(),
                            json={"query": "{ merchant { id } }"})  # fmt: skip
        self.merchant_id = str(answer.json()["data"]["merchant"]["id"])
        self.all = scenarios(self.merchant_id)
        self.items: dict[str, list[str]] = {}
        self.runs = 0
        self.cold = 0

    def chosen(self) -> list[Scenario]:
        names = self.args.scenario or list(self.all)
        return [self.all["hello"], *(self.all[n] for n in names if n != "hello")]

    def prepare(self, chosen: list[Scenario]) -> None:
        per_level = math.ceil(self.args.duration * self.args.pool_rate)
        for scenario in chosen:
            if scenario.pool is not None:
                count = WARM + self.args.count + per_level * len(self.args.concurrency)
                print(f"preparing {count} {scenario.pool} for {scenario.name}", flush=True)
                self.items[scenario.name] = pools.prepare(
                    self.stack, self.merchant_id, scenario.pool, count
                )

    def take(self, scenario: Scenario, count: int) -> tuple[str, ...]:
        items = self.items.get(scenario.name)
        if items is None:
            return ()
        taken, self.items[scenario.name] = items[:count], items[count:]
        return tuple(taken)

    def load(self, scenario: Scenario, concurrency: int, **how: Any) -> Load:
        target = self.stack.hello if scenario.target == "hello" else self.stack.gateway
        self.runs += 1
        return Load(target, self.stack.headers(), (scenario.request,), concurrency,
                    f"{self.prefix}-{self.runs}", reusable=scenario.reusable, **how)  # fmt: skip

    def upstream(self) -> dict[str, Counter[str]]:
        return {
            name: Counter(sandbox.stats()["requests"])
            for name, sandbox in (("xseries", self.stack.xseries), ("kounta", self.stack.kounta))
        }

    def measure(self, scenario: Scenario) -> Result:
        minimum = scenario.minimum
        result = Result(scenario.name, scenario.target, scenario.read,
                        minimum_calls=minimum.calls, minimum_critical=minimum.critical,
                        minimum_why=minimum.why)  # fmt: skip
        warm = run(self.load(scenario, 1, count=WARM, items=self.take(scenario, WARM)),
                   python=True)  # fmt: skip
        self.note_errors(result, warm)
        count = self.args.count
        before = self.upstream()
        counted = run(self.load(scenario, 1, count=count, items=self.take(scenario, count)),
                      python=True)  # fmt: skip
        after = self.upstream()
        self.note_errors(result, counted)
        result.counted_requests = count
        for pos in before:
            delta = after[pos] - before[pos]
            result.calls_by_pos[pos] = round(sum(delta.values()) / count, 3)
            for route, calls in delta.items():
                result.calls_by_route[f"{pos} {route}"] = round(calls / count, 3)
        result.calls_per_op = round(sum(result.calls_by_pos.values()), 3)
        self.added_latency(result, counted)
        per_level = math.ceil(self.args.duration * self.args.pool_rate)
        for concurrency in sorted(self.args.concurrency):
            items = self.take(scenario, per_level)
            outcome = run(self.load(scenario, concurrency, seconds=self.args.duration,
                                    items=items), python=self.python)  # fmt: skip
            self.note_errors(result, outcome)
            result.levels.append(Level(concurrency, outcome.driver, round(outcome.rps, 1),
                                       round(outcome.p50_ms, 2), round(outcome.p90_ms, 2),
                                       round(outcome.p99_ms, 2), outcome.completed,
                                       outcome.errors, outcome.replays))  # fmt: skip
        return result

    def note_errors(self, result: Result, outcome: Outcome) -> None:
        result.errors += outcome.errors
        result.first_error = result.first_error or outcome.first_error

    def added_latency(self, result: Result, counted: Outcome) -> None:
        """Total minus the upstream time on the critical path: the gateway's own figure when
        it sends ``Server-Timing: upstream``, else latency x the sequential calls (the
        minimum's, plus any extra call, taken as sequential)."""
        latency = self.args.upstream_latency_ms
        extra = max(0.0, result.calls_per_op - result.minimum_calls)
        estimate = latency * (result.minimum_critical + extra)
        added = [
            total - (upstream if upstream is not None else estimate)
            for total, upstream in zip(counted.latencies_ms, counted.upstream_ms, strict=True)
        ]
        if not added:
            return
        timed = all(upstream is not None for upstream in counted.upstream_ms)
        result.added_method = "server-timing" if timed else "estimate"
        result.added_p50_ms = round(percentile(added, 50), 2)
        result.added_p99_ms = round(percentile(added, 99), 2)

    def rss(self, results: list[Result]) -> Rss | None:
        total = self.args.rss_requests
        reads = [r for r in results if r.read and r.target == "gateway"]
        chosen = [self.all[r.name] for r in reads] or [self.all["kounta-lookup"]]
        if total <= 0:
            return None
        pid = self.stack.pid("gateway")
        requests = tuple(replace(s.request, expect="") for s in chosen)
        rates = [r.top.rps for r in reads if r.top is not None and r.top.rps > 0]
        rate = sum(rates) / len(rates) if rates else 500.0
        concurrency = max(self.args.concurrency)
        print(f"RSS: {total} requests over {', '.join(s.name for s in chosen)}", flush=True)
        before = rss_kib(pid)
        done = 0
        while done < total:
            if self.python:
                seconds, count = None, total - done
            else:
                seconds, count = max(1.0, min(60.0, (total - done) / rate)), None
            outcome = run(Load(self.stack.gateway, self.stack.headers(), requests, concurrency,
                               f"{self.prefix}-rss{done}", seconds=seconds, count=count),
                          python=self.python)  # fmt: skip
            if outcome.completed + outcome.errors == 0:
                break  # nothing answered: the gateway is stuck; the reading says so
            done += outcome.completed + outcome.errors
            rate = max(outcome.rps, 1.0)
        return Rss(done, self.cold, before, rss_kib(pid), [s.name for s in chosen])

    def run(self, command: str) -> report.Run:
        chosen = self.chosen()
        self.cold = rss_kib(self.stack.pid("gateway"))
        self.prepare(chosen)
        for sandbox in self.stack.sandboxes():
            sandbox.set_latency(self.args.upstream_latency_ms)
        outcome = report.Run(
            command=command,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            upstream_latency_ms=self.args.upstream_latency_ms,
            duration_s=self.args.duration,
            concurrency=sorted(self.args.concurrency),
            driver="python" if self.python else "wrk",
            cpus=os.cpu_count() or 0,
        )
        print(f"gateway pid {self.stack.pid('gateway')}", flush=True)
        with profiling(self.args.profile, self.stack.pid("gateway")):
            for scenario in chosen:
                print(f"measuring {scenario.name}", flush=True)
                outcome.results.append(self.measure(scenario))
            # The baseline again, last: the better of its two runs, so that a moment of
            # someone else's load on the machine does not flatter every ratio.
            print("measuring hello again", flush=True)
            again = self.measure(chosen[0])
        first = outcome.results[0]
        runs = [r.top.rps for r in (first, again) if r.top is not None]
        if again.top and first.top and again.top.rps > first.top.rps:
            outcome.results[0] = again
        outcome.results[0].baseline_rps = runs
        hello = outcome.results[0].top
        for result in outcome.results:
            if hello is not None and hello.rps and result.top is not None:
                result.ratio_to_hello = round(result.top.rps / hello.rps, 3)
        outcome.rss = self.rss(outcome.results)
        if any(result.errors for result in outcome.results):
            outcome.gateway_log = self.stack.log_tail()
        return outcome


@contextlib.contextmanager
def profiling(output: Path | None, pid: int) -> Iterator[None]:
    """``py-spy record`` on the gateway while the scenarios run; SIGINT makes it write."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: uv sync (it is a dev dependency)")
    # A .txt output is py-spy's "raw" format (collapsed stacks, one per line with its
    # count): what a script can sum up; anything else is a flame graph.
    kind = ["--format", "raw"] if output.suffix == ".txt" else []
    recorder = subprocess.Popen([spy, "record", "--pid", str(pid), "--output", str(output),
                                 "--rate", "200", *kind])  # fmt: skip
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=120)
        print(f"profile: {output}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["uv", "run", "python", "-m", "bench", *given])
    with tempfile.TemporaryDirectory() as workdir:
        stack = boot(Path(workdir))
        try:
            outcome = Bench(stack, args).run(command)
        finally:
            stack.stop()
    print()
    print(report.table(outcome))
    path = report.write(outcome)
    print(f"written: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
