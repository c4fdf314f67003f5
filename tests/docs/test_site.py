"""The documentation site builds with warnings as errors (a broken link, a docstring that names a parameter
the function does not take, a page missing from the nav all fail), and holds what it promises."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "MECHARENA_DOCS_EXECUTE": "false"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    home = (site / "index.html").read_text()
    assert "Mechanism Arena" in home and "make test" in home  # the README is the home page
    api = (site / "api" / "discovery" / "index.html").read_text()
    assert "policy_search" in api and "Search a policy for the first" in api  # generated from the docstring
    assert "simulate_summary" in (site / "tutorials" / "quickstart" / "index.html").read_text()
    for name in ("own_mechanism", "finding_exploits", "designer_sb3", "llm_agents"):
        assert (site / "tutorials" / name / "index.html").exists(), name
    usecases = (site / "usecases" / "index.html").read_text()
    assert "examples/plugins/token_incentive.py" in usecases  # a file outside the site, printed as its path
