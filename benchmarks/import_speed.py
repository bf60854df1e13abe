"""How long `gnocchi data import` takes on a continuous MATLAB recording of ~15 k bins × 171 units.

Writes the recording with the tests' generator (tests/recordings.py: 50 ms spike counts as units ×
time, hand position and velocity in metres as 3 × time, a time vector), then times the whole import
command, as a fresh process and in-process (read, segment at speed onsets, derive labels and splits, write the dataset),
``--repeats`` times, and prints the median with the range, beside the time to read the .mat alone.

    python benchmarks/import_speed.py [--bins 15000] [--units 171] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import recordings  # noqa: E402
from gnocchi_core.cli import main  # noqa: E402


def run(bins: int, units: int, repeats: int) -> None:
    import scipy.io

    with tempfile.TemporaryDirectory() as tmp:
        source = recordings.continuous_mat(Path(tmp) / "m1.mat", n_bins=bins, n_units=units)
        command = ["data", "import", str(source), "--spikes", "spike_counts", "--units-axis", "0", "--time", "time",
                   "--behavior", "hand_pos=pos:m", "--behavior", "hand_vel=vel:m/s", "--segment", "speed-onset",
                   "--out", str(Path(tmp) / "m1.h5")]
        imports, reads, processes = [], [], []
        for _ in range(repeats):  # what a user waits for: a fresh `gnocchi` process, imports included
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "gnocchi_core.cli", *command], check=True, capture_output=True)
            processes.append(time.perf_counter() - start)
        for _ in range(repeats):
            start = time.perf_counter()
            scipy.io.loadmat(source)
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                assert main(command) == 0
            imports.append(time.perf_counter() - start)
        trials = next(line for line in printed.getvalue().splitlines() if line.strip().startswith("trials"))
    print(f"continuous .mat, {bins} bins × {units} units ({source.name}, {trials.split(None, 1)[1]})")
    for label, times in (("as a new process", processes), ("in-process", imports),
                         ("scipy.io.loadmat alone", reads)):
        print(f"  {label:<24} median {statistics.median(times):.2f} s (range {min(times):.2f}–{max(times):.2f}, "
              f"{repeats} runs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=15_000)
    parser.add_argument("--units", type=int, default=171)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    run(args.bins, args.units, args.repeats)
