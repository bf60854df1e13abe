"""The README's "your arrays → TrialData → train → explore" example runs as a script, as written (with its
training budget cut from 2 minutes to 3 seconds per model)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import gnocchi_core

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_worked_example_runs_as_a_script(tmp_path):
    text = README.read_text()
    block = re.search(r"<!-- example:start -->\n```python\n(.*?)```\n<!-- example:end -->", text, re.S).group(1)
    assert "max_minutes=2" in block
    script = tmp_path / "example.py"
    script.write_text(block.replace("max_minutes=2", "max_minutes=0.05"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(gnocchi_core.__file__).parents[1])}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"\d+ test trials → codes \(\d+, 16\) → generated rates \(\d+, 50, 40\)", result.stdout)
    assert "derived      condition_id enumerates the 4 distinct values of condition" in result.stdout
    assert gnocchi_core.load_model(tmp_path / "work" / "mine_models" / "lfads").n_neurons == 40
