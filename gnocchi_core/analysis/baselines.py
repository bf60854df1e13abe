"""Reference baselines as pure functions of arrays.

`smoothing_baseline` is the Neural Latents Benchmark's spike-smoothing baseline
(nlb_tools `examples/baselines/smoothing/run_smoothing.py`): smooth each held-in neuron with a
Gaussian kernel, take the log, and fit one Poisson GLM per held-out neuron from those log-rates
on the training trials. Its MC_Maze_Small settings (60 ms kernel, α = 0.1) are the defaults.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import convolve
from scipy.signal.windows import gaussian
from sklearn.linear_model import PoissonRegressor

LOG_OFFSET = 1e-4  # added before the log, as nlb_tools does


def smooth_spikes(spikes: np.ndarray, bin_ms: float, kernel_sd_ms: float = 60.0) -> np.ndarray:
    """Counts (trials, bins, neurons) convolved along bins with nlb_tools' normalised Gaussian window.

    The window has int(6·sd/bin) points and a standard deviation of int(sd/bin) bins; the
    output is `np.convolve(x, window, "same")` (zero padding) as the NLB baseline computes it,
    cut to the trial's length when a trial is shorter than the window (numpy would lengthen it).
    """
    window = gaussian(int(6 * kernel_sd_ms / bin_ms), int(kernel_sd_ms / bin_ms), sym=True)
    window /= window.sum()
    spikes = np.asarray(spikes, dtype=np.float64)
    full = convolve(spikes, window[None, :, None], mode="full", method="direct")
    start = (len(window) - 1) // 2
    return full[:, start:start + spikes.shape[1]]


def fit_poisson_glms(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, alpha: float,
                     max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """One `PoissonRegressor` per output column; predictions clipped to [1e-9, 1e20] (as nlb_tools).

    A fit that hits its iteration limit is redone with 5× the limit, up to 10,000 iterations.
    """
    train_pred, eval_pred = [], []
    for column in range(train_y.shape[1]):
        iterations = max_iter
        while True:
            glm = PoissonRegressor(alpha=alpha, max_iter=iterations).fit(train_x, train_y[:, column])
            if glm.n_iter_ < glm.max_iter or iterations >= 10_000:
                break
            iterations *= 5
        train_pred.append(glm.predict(train_x))
        eval_pred.append(glm.predict(eval_x))
    clip = lambda p: np.clip(np.stack(p, axis=1), 1e-9, 1e20)  # noqa: E731
    return clip(train_pred), clip(eval_pred)


def smoothing_baseline(train_heldin: np.ndarray, train_heldout: np.ndarray, eval_heldin: np.ndarray, *,
                       bin_ms: float, kernel_sd_ms: float = 60.0, alpha: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Held-out neurons' rates, in expected counts per bin, for the train and eval trials.

    ``train_heldin`` (trials, bins, held-in), ``train_heldout`` (trials, bins, held-out) and
    ``eval_heldin`` are spike counts. Returns (train_rates_heldout, eval_rates_heldout).
    """
    n_bins, n_out = train_heldout.shape[1], train_heldout.shape[2]
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    train_x = np.log(flat(smooth_spikes(train_heldin, bin_ms, kernel_sd_ms)) + LOG_OFFSET)
    eval_x = np.log(flat(smooth_spikes(eval_heldin, bin_ms, kernel_sd_ms)) + LOG_OFFSET)
    train_rates, eval_rates = fit_poisson_glms(train_x, flat(np.asarray(train_heldout, dtype=np.float64)), eval_x,
                                               alpha)
    return train_rates.reshape(-1, n_bins, n_out), eval_rates.reshape(-1, n_bins, n_out)
