"""The benchmark: ``uv run python -m bench`` (bench/README.md).

A tool, not a test: ``pyproject.toml`` collects tests from ``tests/`` only, so pytest never
runs it. It may import the gateway's pure modules (ids), never start it in its own process:
every server runs as a subprocess, and the load comes from ``wrk`` or from a separate
Python process.
"""
