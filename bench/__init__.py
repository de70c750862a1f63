"""Test and measurement tooling, kept out of the product packages: run from the repository root.

``python -m bench.client`` (one aiortc client), ``python -m bench.loadtest`` (N clients and the fault cases),
``python -m bench.browser`` (glass-to-glass latency in Chromium), :mod:`bench.netns` (a server and a client
in a fresh loopback-only network namespace), ``bash bench/live_cpu.sh`` (all of the live figures) and
``python bench/mannequin_facing.py``. Not installed with the package: the tests import it from the
repository root (``pythonpath`` in ``pyproject.toml``).
"""
