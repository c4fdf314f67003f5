"""Real data and a live dashboard for the server tests.

Everything here is made by the real commands, never by hand: ``mecharena run`` writes a small run
directory (``tests.runner.specs.SMALL``, 20 cells) and ``mecharena fuzz`` finds one first-price
exploit on a tiny budget. :func:`serve` starts ``build_app`` under uvicorn on 127.0.0.1 and a free
port in a thread, and stops it on exit.
"""

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.runner.specs import SMALL, SMALL_CELLS

SMALL_RUN = "small"
EMPTY_RUN = "empty"  # a run directory with nothing in it yet
CORRUPT_RUN = "corrupt"  # a results.duckdb that is not a database
# fuzz settings of tests/fuzz/test_cli.py: finds a shading exploit of first price in ~2 s
FUZZ = ("--mechanism", "first_price", "--population", "truthful:4", "--families", "shading", "--budget", "12",
        "--markets", "200", "--rounds", "3", "--eval-markets", "400")


def mecharena(*args: Any, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``mecharena`` CLI in a fresh interpreter; fail the test with its output on a non-zero exit."""
    command = [sys.executable, "-m", "mecharena.cli", *(str(a) for a in args)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """A directory of run directories: ``small`` (complete), ``empty`` and ``corrupt``."""
    root = tmp_path_factory.mktemp("ui-data")
    spec = root / "small.yaml"
    spec.write_text(SMALL)
    runs = root / "runs"
    summary = json.loads(mecharena("run", spec, "--out", runs / SMALL_RUN, "--workers", "1", "--json").stdout)
    assert summary["computed"] == SMALL_CELLS and summary["failed"] == []
    (runs / EMPTY_RUN).mkdir()
    (runs / CORRUPT_RUN).mkdir()
    (runs / CORRUPT_RUN / "results.duckdb").write_bytes(b"this is not a duckdb database\n" * 64)
    return runs


@pytest.fixture(scope="session")
def exploit_library(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """An exploit library with one report, and ``mecharena fuzz --json``'s ``report`` entry (id, library)."""
    library = tmp_path_factory.mktemp("ui-exploits") / "library"
    found = json.loads(mecharena("fuzz", *FUZZ, "--library", library, "--json").stdout)
    assert found["exploit"] and found["report"], found
    return library, found["report"]


@contextmanager
def serve(runs: Path, exploits: Path, startup_timeout: float = 20.0) -> Iterator[str]:
    """Serve the dashboard over ``runs`` and ``exploits`` on a free loopback port; yield its base URL."""
    import uvicorn

    from mecharena.server.ui import build_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(runs, exploits), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            pytest.fail(f"the dashboard did not start on 127.0.0.1:{port} within {startup_timeout} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def dashboard(runs_dir, exploit_library) -> Iterator[str]:
    """Base URL of a dashboard over :func:`runs_dir` and :func:`exploit_library`."""
    with serve(runs_dir, exploit_library[0]) as url:
        yield url
