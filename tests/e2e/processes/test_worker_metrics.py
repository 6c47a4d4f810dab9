"""``gateway worker --metrics-port``: a worker in its own process (the Procfile's) serves
its own figures, which no web process can tell (docs/metrics.md)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, run_gateway


def test_a_worker_process_serves_its_lag_and_backlog(tmp_path: Path) -> None:
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
        "GATEWAY_SECRET_KEY": secrets.token_urlsafe(32),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    run_gateway(env, "migrate")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker", "--interval", "0.2",
         "--metrics-port", str(port)],
        env={**clean, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        samples = _samples_after_a_pass(f"http://127.0.0.1:{port}/metrics", worker)
    finally:
        worker.terminate()
        _, errors = worker.communicate(timeout=15)
    assert time.time() - 60 < samples["gateway_worker_last_pass_timestamp_seconds"] <= time.time()
    assert 0 <= samples["gateway_worker_lag_seconds"] < 60
    assert samples["gateway_unsettled_operations"] == 0  # nothing left: an empty store
    assert "Traceback" not in errors


def _samples_after_a_pass(url: str, worker: subprocess.Popen[str]) -> dict[str, float]:
    """The worker's samples (unlabelled, or the first of each name) once it has passed."""
    ends = time.monotonic() + 60
    while time.monotonic() < ends:
        assert worker.poll() is None, "the worker exited"
        try:
            text = httpx.get(url, timeout=1).text
        except httpx.TransportError:
            text = ""
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, sample.value)
        if samples.get("gateway_worker_last_pass_timestamp_seconds"):
            return samples
        time.sleep(0.05)  # polling a process that is starting
    raise AssertionError("the worker served no pass within 60 s")
