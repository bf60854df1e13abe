"""Training one model on several processes (`--devices N`, torch.distributed; gloo on the CPU, here with
2 processes): the same weights and history as one process for configs without random draws, the CLI's
--devices with one set of files, resume with another process count and after a time budget, the
stochastic case's loss curve, and errors that end every rank with one line.

No config makes training deterministic: LFADS always samples its posteriors and GNOCCHI's diffusion
draws noise and steps. The equivalence tests therefore train LFADS on its posterior means and replace
the diffusion's draws by functions of each trial's own data (so they do not depend on how a batch is
split), with every dropout off; see models/distributed.py for what is only statistically equal.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gnocchi_core import GnocchiError, load_model
from gnocchi_core.cli import main
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.models import distributed
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
from gnocchi_core.models.training import TrainConfig

torch.set_num_threads(1)

# 42 training trials: batches of 41 and 1 (shares of 21 / 20, then 1 / none), and of 9 (5 / 4, ..., 3 / 3)
TRAIN = TrainConfig(epochs=4, batch_size=41, lr=1e-2, weight_decay=1e-4, warmup_steps=2, grad_clip=200.0,
                    ema_decay=0.9, patience=1000, checkpoint_every=2)
LFADS = LfadsConfig(ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=4, gen_dim=8, fac_dim=4,
                    dropout_rate=0.0, cd_rate=0.0, kl_increase_steps=4, l2_increase_steps=4, posterior_samples=2,
                    prior_components=2, train=TRAIN)
GNOCCHI = GnocchiConfig(code_dim=4, channels=8, cond_dim=16, encoder_channels=8, sample_steps=3, prior_components=2,
                        latent_dim=4, ae_channels=8, ae_epochs=2, diffusion_steps=100, dropout=0.0, code_dropout=0.0,
                        lambda_mmd=0.0, ae_coordinated_dropout=0.0, ae_smoothness=0.0,
                        train=replace(TRAIN, epochs=2, batch_size=9, lr=2e-3, grad_clip=1.0))
#: logged batch statistics (not means over trials): computed within each process's share of a batch
BATCH_STATISTICS = {"train_mmd", "train_smooth"}


def _data():
    return synthesize(SynthConfig(n_trials=60, n_neurons=12, n_heldout_neurons=2, grid=2, seed=3))


@pytest.fixture(scope="module")
def data():
    return _data()


class _SplitInvariantDraws:
    """``torch`` for GNOCCHI's model module, with the diffusion's draws made functions of each trial's own
    data: one step for every trial, 'noise' a fixed function of the entry it noises."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def randint(low, high, size, device=None, **_):
        return torch.full(size, high // 3, dtype=torch.long, device=device)

    @staticmethod
    def randn_like(x, **_):
        return torch.sin(3.0 * x + 1.0)


def _without_draws(patch: pytest.MonkeyPatch) -> None:
    from gnocchi_core.models.gnocchi import model as gnocchi_model
    from gnocchi_core.models.lfads.model import LfadsNet

    forward = LfadsNet.forward
    patch.setattr(LfadsNet, "forward", lambda self, encod, sample, n_bins=None: forward(self, encod, False, n_bins))
    patch.setattr(gnocchi_model, "torch", _SplitInvariantDraws())


def _ctrl_c_after_epoch_two(record):
    if record["epoch"] == 2:  # last.pt holds epochs 0-1 (checkpoint_every=2)
        raise KeyboardInterrupt


def _two_ranks(root: str) -> None:
    """Each of 2 ranks: the gradient of one step against the whole batch's, then the three fits the
    one-process runs of `runs` made, without random draws."""
    _without_draws(pytest.MonkeyPatch())
    root, data = Path(root), _data()
    errors = _gradient_errors(data)
    if distributed.is_main():
        (root / "gradient_errors.json").write_text(json.dumps(errors))
    LfadsModel(LFADS, device="cpu").fit(data, root / "lfads_2", progress=False)
    GnocchiModel(GNOCCHI, device="cpu").fit(data, root / "gnocchi_2", progress=False)
    LfadsModel(LFADS, device="cpu").fit(data, root / "resumed", resume=True, progress=False)


def _gradient_errors(data) -> dict[str, float]:
    """For batches of 5 (shares 3 / 2) and 1 (1 / none): ‖summed − whole‖ / ‖whole‖ between the gradient
    summed over the ranks and the one this rank computes on the whole batch, of nets moved off their
    initialisation (GNOCCHI's output layer starts at zero, which would leave most gradients zero)."""
    from gnocchi_core.models.gnocchi.model import GnocchiNet
    from gnocchi_core.models.lfads.model import LfadsNet

    torch.manual_seed(0)
    counts = torch.from_numpy(data.spikes[:5].astype(np.float32))
    nets = {"lfads": (LfadsNet(LFADS, data.n_neurons, data.n_bins, data.heldout_neurons), counts),
            "gnocchi": (GnocchiNet(GNOCCHI, data.n_neurons, data.n_bins), counts.transpose(1, 2).contiguous())}
    world, errors = distributed.World(), {}
    for name, (net, x) in nets.items():
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        for n in (5, 1):
            grads = []
            for shard in (False, True):
                net.zero_grad(set_to_none=True)
                if name == "lfads":
                    net.step.zero_()  # the KL / L2 ramps count calls
                rows, _, share = world.shard(torch.arange(n)) if shard else (torch.arange(n), n, 1.0)
                (net.losses([x[rows]])["loss"] * share).backward()
                if shard:
                    world.sum_gradients(net)
                grads.append(torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None]))
            errors[f"{name}, batch of {n}"] = float((grads[1] - grads[0]).norm() / grads[0].norm())
    return errors


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    with pytest.MonkeyPatch.context() as patch:
        _without_draws(patch)
        LfadsModel(LFADS, device="cpu").fit(data, root / "lfads_1", progress=False)
        GnocchiModel(GNOCCHI, device="cpu").fit(data, root / "gnocchi_1", progress=False)
        with pytest.raises(KeyboardInterrupt):  # one process, interrupted in epoch 3; 2 processes resume it
            LfadsModel(LFADS, device="cpu").fit(data, root / "resumed", progress=False,
                                                on_epoch_end=_ctrl_c_after_epoch_two)
    distributed.launch(_two_ranks, (str(root),), world_size=2, device="cpu")
    return root


def _checkpoint(folder: Path, name: str = "last.pt") -> dict:
    return torch.load(folder / name, weights_only=True)


def _assert_same_training(one: Path, two: Path, names: list[str]) -> None:
    """History, weights and EMA weights equal up to floating-point rounding. ``names``: the module's
    parameters, in the optimiser's order.

    Rounding noise is all some parameters get as a gradient: a convolution's bias feeding a group norm
    of one channel per group, which removes it (~1e-8 of the largest gradient, on one device as on two).
    Adam normalises that noise into steps of a fraction of the learning rate; parameters whose gradient
    stays below 1e-6 of the largest are therefore only required to be finite (the function they are
    part of is compared by `_assert_same_outputs`)."""
    a, b = _checkpoint(one), _checkpoint(two)
    assert (a["epoch"], a["step"], a["best_epoch"]) == (b["epoch"], b["step"], b["best_epoch"])
    assert len(a["history"]) == len(b["history"])
    for record_a, record_b in zip(a["history"], b["history"]):
        assert record_a.keys() == record_b.keys()
        for key in record_a.keys() - BATCH_STATISTICS:
            assert record_b[key] == pytest.approx(record_a[key], rel=1e-5, abs=1e-7), key
    scale = {names[i]: float(state["exp_avg_sq"].sqrt().max()) for i, state in a["optimizer"]["state"].items()}
    noise_only = {name for name, value in scale.items() if value < 1e-6 * max(scale.values())}
    assert len(noise_only) < len(names) / 4, noise_only
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            x, y = a[part][name].double(), b[part][name].double()
            if name.removeprefix("module.") in noise_only:  # the EMA's names are the module's, prefixed
                assert torch.isfinite(y).all()
            else:
                assert (y - x).norm() <= 1e-5 * x.norm() + 1e-9, f"{part} {name}: {(y - x).norm() / x.norm():.2e}"


def _names(module) -> list[str]:
    return [name for name, _ in module.named_parameters()]


def _assert_same_outputs(one: Path, two: Path, data) -> None:
    model_a, model_b = load_model(one, device="cpu"), load_model(two, device="cpu")
    codes = model_a.encode(data)
    np.testing.assert_allclose(model_b.encode(data), codes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model_b.generate(codes[:4], seed=0).rates, model_a.generate(codes[:4], seed=0).rates,
                               rtol=1e-4, atol=1e-5)


def test_summed_shard_gradients_are_the_whole_batch_gradient(runs):
    errors = json.loads((runs / "gradient_errors.json").read_text())
    assert len(errors) == 4 and max(errors.values()) < 1e-5, errors


def test_two_processes_train_lfads_as_one_does(runs, data):
    names = _names(load_model(runs / "lfads_1", device="cpu").net)
    _assert_same_training(runs / "lfads_1", runs / "lfads_2", names)
    _assert_same_outputs(runs / "lfads_1", runs / "lfads_2", data)
    assert _checkpoint(runs / "lfads_2")["history"][-1]["epoch"] == TRAIN.epochs - 1
    assert len(_checkpoint(runs / "lfads_2")["rank_torch_rng"]) == 2  # each rank's stream, for an exact resume


def test_two_processes_train_both_gnocchi_stages_as_one_does(runs, data):
    model = load_model(runs / "gnocchi_1", device="cpu")
    _assert_same_training(runs / "gnocchi_1" / "autoencoder", runs / "gnocchi_2" / "autoencoder",
                          _names(model.autoencoder))
    _assert_same_training(runs / "gnocchi_1", runs / "gnocchi_2", _names(model.net))
    _assert_same_outputs(runs / "gnocchi_1", runs / "gnocchi_2", data)


def test_two_processes_resume_a_one_process_run_as_if_it_never_stopped(runs, data):
    _assert_same_training(runs / "lfads_1", runs / "resumed", _names(load_model(runs / "lfads_1", device="cpu").net))


# ---------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def cli_data(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data.save(folder / "d.h5")
    config = folder / "tiny.json"  # LFADS's random draws all on: dropout, coordinated dropout, posterior samples
    config.write_text(json.dumps({"ic_enc_dim": 8, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 4,
                                  "gen_dim": 8, "fac_dim": 4, "posterior_samples": 2, "prior_components": 2,
                                  "train": {"batch_size": 9, "lr": 1e-2, "warmup_steps": 2}}))
    return folder


def _train(cli_data, out, *extra) -> int:
    return main(["train", "lfads", "--data", str(cli_data / "d.h5"), "--out", str(out), "--device", "cpu",
                 "--config", str(cli_data / "tiny.json"), *extra])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_devices_2_trains_through_the_cli_stops_on_a_budget_and_resumes_with_2_or_1(cli_data, tmp_path, capfd):
    one, two = tmp_path / "one", tmp_path / "two"
    assert _train(cli_data, one, "--epochs", "3") == 0
    # a time budget spent in the first epoch stops both ranks there; rank 0 alone prints and writes
    assert _train(cli_data, two, "--epochs", "3", "--devices", "2", "--max-minutes", "0.0001") == 0
    out = capfd.readouterr().out
    assert "on 2 processes (gloo, cpu)" in out and out.count("done: 1 epochs (stopped: time budget") == 1, out
    assert _files(two) == _files(one)  # one set of files, in the layout one process writes
    saved = json.loads((two / "config.json").read_text())
    assert saved["epochs_trained"] == 1 and saved["stopped"].startswith("time budget")
    model = load_model(two, device="cpu")
    assert np.isfinite(model.generate(model.encode(_data())[:2], seed=0).rates).all()

    assert _train(cli_data, two, "--epochs", "3", "--devices", "2", "--resume") == 0
    assert "done: 3 epochs (stopped: epoch budget)" in capfd.readouterr().out
    assert _files(two) == _files(one)
    history = {name: _checkpoint(folder)["history"] for name, folder in (("one", one), ("two", two))}
    assert [r["epoch"] for r in history["two"]] == [0, 1, 2]
    # random draws differ per share of a batch: the same loss curve up to sampling noise, not equal
    for a, b in zip(history["one"], history["two"]):
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=0.02)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.02)
    assert history["two"][-1]["valid_loss"] < history["two"][0]["valid_loss"]
    assert _train(cli_data, two, "--epochs", "4", "--resume") == 0  # and one process continues what two wrote
    assert "done: 4 epochs" in capfd.readouterr().out and _files(two) == _files(one)


def test_bad_device_counts_are_one_line_errors(cli_data, tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        _train(cli_data, tmp_path / "m", "--devices", "0")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "--devices" in err and "≥ 1" in err
    if torch.cuda.device_count() < 3:
        assert main(["train", "lfads", "--data", str(cli_data / "d.h5"), "--out", str(tmp_path / "m"),
                     "--devices", "3", "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "needs 3 CUDA devices" in err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun starts a rank
    assert _train(cli_data, tmp_path / "m", "--devices", "3") == 2
    assert "does not match this torchrun world of 2" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def _fail_on_rank_one(message: str) -> None:
    distributed.barrier()
    if distributed.rank() == 1:
        raise GnocchiError(message)
    distributed.barrier()  # rank 0 waits here for a rank that is gone: it must not hang


def test_an_error_on_one_rank_ends_every_rank_with_its_one_line_message():
    start = time.monotonic()
    with pytest.raises(GnocchiError, match=r"^rank 1 of 2: the data on rank 1 is broken$"):
        distributed.launch(_fail_on_rank_one, ("the data on rank 1 is broken",), world_size=2, device="cpu")
    assert time.monotonic() - start < distributed.GRACE_S


def test_shares_of_a_batch_cover_it_once_and_weigh_what_they_hold(monkeypatch):
    world = distributed.World()
    rows = torch.arange(5)
    assert world.shard(rows) == (rows, 5, None)  # one process: the batch itself
    world.size = 2
    shares = []
    for world.rank in (0, 1):
        shares.append(world.shard(rows))
    assert [s[0].tolist() for s in shares] == [[0, 1, 2], [3, 4]] and [s[2] for s in shares] == [0.6, 0.4]
    world.rank = 1
    one_row, count, weight = world.shard(torch.arange(1))
    assert (one_row.tolist(), count, weight) == ([0], 0, 0.0)  # an empty share runs one row at weight 0
    assert math.isclose(sum(s[2] for s in shares), 1.0)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert distributed.threads_per_rank(2) == max(1, len(os.sched_getaffinity(0)) // 2)
