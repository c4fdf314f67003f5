"""The wheel: it builds from the checkout, and installed on its own (not the source tree) it has everything the
package needs at run time: the command, the quick start, the Gymnasium registration, the dashboard's files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

QUICK_START = """
import json, sys
from importlib.resources import files
import gymnasium
import mecharena
from mecharena import agents, mechanisms
from mecharena.sim import simulate
assert mecharena.__file__.startswith(sys.argv[1]), mecharena.__file__  # the wheel, not the checkout
trace = simulate(mechanisms.get("second_price"), {"reserve_price": 0.1}, agents.population("truthful:3", 0),
                 markets=200, rounds=2, seed=0)
env = gymnasium.make("mecharena/Designer-v1", stage=2)
obs, _ = env.reset(seed=0)
static = sorted(p.name for p in files("mecharena.server").joinpath("static").iterdir())
templates = sorted(p.name for p in files("mecharena.server.dashboard").joinpath("templates").iterdir())
print(json.dumps({"revenue": float(trace.revenue.mean()), "obs": len(obs), "static": static, "templates": templates}))
"""


def run(*args: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_the_wheel_installs_and_runs_without_the_source_tree(tmp_path):
    env = {**os.environ, "PYTHONPATH": ""}
    run(sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w",
        str(tmp_path / "dist"), env=env, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("mecharena-*-py3-none-any.whl")
    site = tmp_path / "site"
    run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel), env=env,
        cwd=tmp_path)
    env["PYTHONPATH"] = str(site)  # ahead of the checkout's editable path; the dependencies come from this venv
    found = json.loads(run(sys.executable, "-c", QUICK_START, str(site), env=env, cwd=tmp_path))
    assert 0 < found["revenue"] < 1 and found["obs"] > 0 and found["static"] == ["ui.css", "ui.js"]
    shipped = ROOT / "src" / "mecharena" / "server" / "dashboard" / "templates"
    assert found["templates"] == sorted(p.name for p in shipped.glob("*.html"))  # the dashboard's pages
    help_text = run(str(site / "bin" / "mecharena"), "--help", env=env, cwd=tmp_path)
    assert "Mechanism Arena" in help_text and "designer" in help_text
    simulated = json.loads(run(sys.executable, "-m", "mecharena.cli", "simulate", "--mechanism", "first_price",
                               "--population", "bne:3", "--markets", "500", "--rounds", "2", "--json", env=env,
                               cwd=tmp_path))
    assert simulated["mechanism"] == "first_price" and simulated["metrics"]["revenue"]["mean"] > 0
