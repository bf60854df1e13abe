"""`gnocchi build-assets` end to end on tiny models: the layout, the report contract over seeds, the
README paragraph generated from it, and bit-identical rebuilds."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from gnocchi_core import assets
from gnocchi_core.analysis.report import README_END, README_START, comparison_paragraph, update_readme
from gnocchi_core.models import load_model

from conftest import MC_MAZE_SMALL

TINY = {
    "gnocchi": ("gnocchi", {"code_dim": 4, "channels": 16, "cond_dim": 32, "encoder_channels": 16,
                            "sample_steps": 3, "latent_dim": 4, "ae_channels": 16, "ae_epochs": 2,
                            "train": {"epochs": 2}}),
    "lfads": ("lfads", {"ic_enc_dim": 16, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 8, "gen_dim": 16,
                        "fac_dim": 4, "posterior_samples": 2, "train": {"epochs": 2}}),
    "lfads_ic": ("lfads", {"ic_enc_dim": 16, "ci_enc_dim": 0, "con_dim": 0, "co_dim": 0, "ic_dim": 8, "gen_dim": 16,
                           "fac_dim": 4, "posterior_samples": 2, "train": {"epochs": 2}}),
}
CONTRACT = ["code_snr_target_x", "code_snr_target_y", "nav_slope_target_x", "nav_slope_target_y", "leakage_target_x",
            "leakage_target_y", "axis_cos_whitened_target_x_target_y", "r2_generated", "r2_truth_ceiling",
            "decoded_target_error_cm", "decoder_endpoint_error_cm", "heldout_target_error_frac_grid"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("assets")
    maze = MC_MAZE_SMALL / "mc_maze_small_full.h5"
    result = assets.build_assets(out, seeds=(0, 1), jobs=2, models=TINY, trials_per_target=4, samples=2,
                                 maze=maze if maze.is_file() else "", progress=False)
    return out, result


def test_layout_seed_zero_for_the_explorer_and_the_other_seeds_beside(built):
    out, _ = built
    for name in TINY:
        for folder in (out / "models" / name, out / "models" / "seeds" / f"{name}-seed1"):
            for file in ("config.json", "model.pt", "decoder.json", "training.json"):
                assert (folder / file).is_file(), folder / file
            load_model(folder, device="cpu")
        history = json.loads((out / "models" / name / "training.json").read_text())
        assert history["threads"] == 1 and len(history["history"]) == 2
    assert not list((out / "models").glob(".*"))  # no staging or checkpoint folders left behind
    data = out / "motornet_reach"
    assert (data / "motornet_reach.h5").is_file() and (data / "policy.pt").is_file()


def test_report_follows_the_contract(built):
    out, result = built
    report = json.loads((out / "models" / "report" / "report.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert report == result["report"] and report["seeds"] == [0, 1]
    assert isinstance(report["dataset"]["trials"], int) and report["dataset"]["test_trials_per_heldin_target_min"] >= 1
    assert set(report["models"]) == {"gnocchi", "lfads", "lfads_ic"}
    for metrics in report["models"].values():
        for key in CONTRACT:
            entry = metrics[key]
            assert set(entry) <= {"mean", "sd", "seeds", "why"} and len(entry["seeds"]) == 2
            assert (entry["mean"] is None) == all(v is None for v in entry["seeds"])
            if entry["mean"] is None or entry["sd"] is None:
                assert entry["why"]
        for key in ("decoder_endpoint_error_cm", "r2_truth_ceiling", "code_snr_target_x", "r2_generated"):
            assert metrics[key]["mean"] is not None, (key, metrics[key])  # defined even for untrained models
    text = (out / "models" / "report" / "report.md").read_text()
    assert "±" in text and "## navigation" in text and "R² is 1 for a perfect match" in text


def test_mc_maze_report(built):
    out, result = built
    if not MC_MAZE_SMALL.is_dir():
        pytest.skip(f"real recordings not found at {MC_MAZE_SMALL}")
    report = json.loads((out / "models" / "report_maze" / "report.json").read_text())
    assert set(report["models"]) == {"gnocchi", "lfads"} and report["dataset"]["neurons"] == 142
    assert report["models"]["lfads"]["cobps"]["mean"] is not None
    assert report["models"]["gnocchi"]["cobps"]["mean"] is None and "held out" in report["models"]["gnocchi"]["cobps"]["why"]
    for name in ("code_snr_target_x", "r2_generated", "r2_truth_ceiling"):
        assert name in report["models"]["gnocchi"]
    assert not list(out.rglob("*maze*.h5"))  # the recording is never written into the output


def test_models_rebuild_bit_identically(built, tmp_path):
    out, _ = built
    job = next(j for j in assets.training_jobs(TINY, (1,), out / "motornet_reach" / "motornet_reach.h5",
                                               tmp_path, threads=1, device="cpu") if j.name == "lfads")
    assets.train_job(job)  # in this process, not the pool's: the same weights all the same
    first = _tensors(torch.load(out / "models" / "seeds" / "lfads-seed1" / "model.pt", weights_only=True))
    again = _tensors(torch.load(tmp_path / "seeds" / "lfads-seed1" / "model.pt", weights_only=True))
    assert first.keys() == again.keys() and len(first) > 5
    assert all(torch.equal(first[k], again[k]) for k in first)


def _tensors(state, prefix: str = "") -> dict:
    """Every tensor of a (nested) state dict, by dotted path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    out = {}
    for key, value in (state.items() if isinstance(state, dict) else enumerate(state or [])):
        if isinstance(value, (dict, list, tuple, torch.Tensor)):
            out.update(_tensors(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def test_a_finished_build_is_kept_and_only_reevaluated(built, tmp_path, capsys):
    out, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out / "motornet_reach", copy / "motornet_reach")
    shutil.copytree(out / "models" / "gnocchi", copy / "models" / "gnocchi")
    shutil.copytree(out / "models" / "lfads", copy / "models" / "lfads")
    before = (copy / "models" / "gnocchi" / "model.pt").read_bytes()
    assets.build_assets(copy, seeds=(0,), jobs=1, models={k: TINY[k] for k in ("gnocchi", "lfads")},
                        trials_per_target=4, samples=2, maze="", progress=False)
    assert "gnocchi seed 0: already built" in capsys.readouterr().out
    assert (copy / "models" / "gnocchi" / "model.pt").read_bytes() == before


def test_readme_paragraph_is_generated_and_says_beats_only_when_seeds_agree(tmp_path):
    def entry(*values):
        return {"mean": sum(values) / len(values), "sd": 0.1, "seeds": list(values)}

    report = {"seeds": [0, 1, 2], "models": {
        "gnocchi": {"code_snr_target_x": entry(30, 31, 32), "r2_generated": entry(0.5, 0.9, 0.6),
                    "nav_slope_target_x": entry(0.9, 1.05, 0.95), "leakage_target_x": entry(0.5, 0.6, 0.7)},
        "lfads_ic": {"code_snr_target_x": entry(20, 21, 22), "r2_generated": entry(0.6, 0.7, 0.7),
                     "nav_slope_target_x": entry(1.3, 0.7, 0.8), "leakage_target_x": entry(0.2, 0.3, 0.4)}}}
    text = comparison_paragraph(report)
    assert "better on code SNR for target x (31.00 vs 21.00), navigation slope for target x" in text  # nearer 1
    assert "Worse on leakage navigating target x (0.60 vs 0.30)" in text
    assert "better on code SNR for target x (31.00 vs 21.00)" in text
    assert "No consistent difference on R² of generated vs true rates (0.67 vs 0.67)" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\nrest\n")
    assert update_readme(readme, report) and text in readme.read_text() and "old" not in readme.read_text()
    assert not update_readme(readme, report)  # unchanged the second time


def test_shipped_readme_paragraph_matches_the_shipped_report():
    root = assets.ASSETS.parent
    report = json.loads((root / "assets" / "models" / "report" / "report.json").read_text())
    readme = (root / "README.md").read_text()
    assert f"{README_START}\n{comparison_paragraph(report)}\n{README_END}" in readme
