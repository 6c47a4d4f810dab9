"""The load: ``wrk`` (C, its own process) when installed, else Python in a separate process.

Both send the same requests (bench/scenarios.py) and report the same ``Outcome``. Only the
Python driver sees each response's headers, so it is the one that reads ``Server-Timing``
(the added-latency column) and the one used for counted runs.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import httpx

from bench.scenarios import Request

WRK = shutil.which("wrk")
WRK_MARK = "BENCH-WRK "


@dataclass(frozen=True)
class Load:
    base: str
    headers: dict[str, str]
    requests: tuple[Request, ...]
    """Sent in turn: request i is ``requests[i % len]``."""
    concurrency: int
    prefix: str
    """Makes ``@N@`` unique across the whole run."""
    seconds: float | None = None
    count: int | None = None
    items: tuple[str, ...] = ()
    reusable: bool = True


@dataclass
class Outcome:
    driver: str
    completed: int
    errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    replays: int = 0
    """Requests that had to reuse a pool item that may not serve twice: the run outlived it."""
    first_error: str = ""
    latencies_ms: list[float] = field(default_factory=list)
    upstream_ms: list[float | None] = field(default_factory=list)
    """Per good response, ``Server-Timing: upstream;dur=`` when the gateway sent it."""

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


def run(load: Load, *, python: bool = False) -> Outcome:
    if WRK and not python and load.seconds is not None:
        return run_wrk(load)
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as worker:
        outcome: Outcome = worker.apply(run_python, (load,))
    return outcome


# --------------------------------------------------------------------------- python


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


def server_timing(header: str | None) -> dict[str, float]:
    """``upstream;dur=12.5, db;dur=1, total;dur=20`` → {"upstream": 12.5, ...} (ms)."""
    found: dict[str, float] = {}
    for metric in (header or "").split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "dur":
                try:
                    found[name] = float(value.strip('"'))
                except ValueError:
                    continue
    return found


def good(status: int, body: str, expect: str) -> bool:
    return 200 <= status < 300 and expect in body and '"errors"' not in body


def run_python(load: Load) -> Outcome:
    return asyncio.run(_drive(load))


async def _drive(load: Load) -> Outcome:
    latencies: list[float] = []
    upstream: list[float | None] = []
    errors, replays, issued = 0, 0, 0
    first_error = ""
    limits = httpx.Limits(max_connections=load.concurrency)
    deadline = time.perf_counter() + (load.seconds or 0)

    def next_index() -> int | None:
        nonlocal issued
        if load.count is not None and issued >= load.count:
            return None
        if load.seconds is not None and time.perf_counter() >= deadline:
            return None
        issued += 1
        return issued - 1

    async with httpx.AsyncClient(
        base_url=load.base, headers=load.headers, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            nonlocal errors, replays, first_error
            while (index := next_index()) is not None:
                request = load.requests[index % len(load.requests)]
                item = ""
                if load.items:
                    item = load.items[index % len(load.items)]
                    replays += index >= len(load.items) and not load.reusable
                path, body = request.render(f"{load.prefix}-{index}", item)
                started = time.perf_counter()
                try:
                    answer = await client.request(request.method, path, content=body)
                except httpx.HTTPError as failed:
                    errors += 1
                    first_error = first_error or f"{type(failed).__name__}: {failed}"
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if good(answer.status_code, answer.text, request.expect):
                    latencies.append(elapsed)
                    upstream.append(server_timing(answer.headers.get("server-timing")).get(
                        "upstream"))  # fmt: skip
                else:
                    errors += 1
                    first_error = first_error or f"{answer.status_code} {answer.text[:300]}"

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(load.concurrency)))
        seconds = time.perf_counter() - started
    return Outcome("python", len(latencies), errors, seconds, percentile(latencies, 50),
                   percentile(latencies, 90), percentile(latencies, 99), replays, first_error,
                   latencies, upstream)  # fmt: skip


# --------------------------------------------------------------------------- wrk


def lua(load: Load, threads: int) -> str:
    """wrk's script: each thread sends requests ``tid, tid + threads, ...`` so that ``@N@``
    and pool items stay unique across threads; ``done`` prints the figures as one JSON line."""
    q = json.dumps
    specs = ",\n".join(
        f"{{method={q(r.method)}, path={q(r.path)}, body={q(r.body) if r.body else 'nil'}, "
        f"expect={q(r.expect)}}}"
        for r in load.requests
    )
    items = ",\n".join(q(item) for item in load.items)
    headers = "\n".join(f"wrk.headers[{q(k)}] = {q(v)}" for k, v in load.headers.items())
    return f"""
{headers}
local specs = {{ {specs} }}
local items = {{ {items} }}
local reusable = {"true" if load.reusable else "false"}
local threads, prefix = {threads}, {q(load.prefix)}
local made = {{}}
local counter, current = 0, 1
-- Globals, not locals: done() reads them from each thread with thread:get.
errors, replays, first_error = 0, 0, ""

function setup(thread)
    thread:set("tid", #made)
    table.insert(made, thread)
end

local function fill(text, unique, item)
    text = text:gsub("@N@", function() return unique end)
    return (text:gsub("@ITEM@", function() return item end))
end

function request()
    local index = counter * threads + tid
    counter = counter + 1
    current = (index % #specs) + 1
    local spec = specs[current]
    local item = ""
    if #items > 0 then
        item = items[(index % #items) + 1]
        if index >= #items and not reusable then replays = replays + 1 end
    end
    local unique = prefix .. "-" .. index
    local body = spec.body and fill(spec.body, unique, item) or nil
    return wrk.format(spec.method, fill(spec.path, unique, item), nil, body)
end

local function escape(text)
    return (text:gsub('[%c"\\\\]', function(c) return string.format("\\\\u%04x", c:byte()) end))
end

function response(status, headers, body)
    local expect = specs[current].expect
    if status < 200 or status > 299 or not body:find(expect, 1, true)
            or body:find('"errors"', 1, true) then
        errors = errors + 1
        if first_error == "" then first_error = status .. " " .. body:sub(1, 300) end
    end
end

function done(summary, latency, requests)
    local bad, replayed, first = 0, 0, ""
    for _, thread in ipairs(made) do
        bad = bad + thread:get("errors")
        replayed = replayed + thread:get("replays")
        if first == "" then first = thread:get("first_error") end
    end
    local e = summary.errors
    io.write(string.format(
        '{WRK_MARK}{{"requests": %d, "duration_us": %d, "errors": %d, "socket_errors": %d, '
        .. '"replays": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "first_error": "%s"}}\\n',
        summary.requests, summary.duration, bad,
        e.connect + e.read + e.write + e.timeout, replayed,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), escape(first)))
end
"""


def run_wrk(load: Load) -> Outcome:
    """``response`` checks an answer against the last request made on the thread, which is
    its own only with one template: a rotation (the RSS run) sends ``expect=""``."""
    assert WRK is not None and load.seconds is not None
    threads = max(1, min(2, load.concurrency, os.cpu_count() or 1))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua(load, threads))
    try:
        out = subprocess.run(
            [WRK, f"-t{threads}", f"-c{load.concurrency}", f"-d{max(1, round(load.seconds))}s",
             "--timeout", "30s", "--latency", "-s", script.name, load.base],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    line = next(line for line in out.splitlines() if line.startswith(WRK_MARK))
    figures = json.loads(line.removeprefix(WRK_MARK))
    errors = int(figures["errors"]) + int(figures["socket_errors"])
    return Outcome(
        "wrk",
        completed=max(0, int(figures["requests"]) - int(figures["errors"])),
        errors=errors,
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        replays=int(figures["replays"]),
        first_error=str(figures["first_error"]),
    )
