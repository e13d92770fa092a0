"""Time grids T = s_0 > s_1 > … > s_N = δ for the reverse samplers.

A schedule returns forward times in the OU clock s (where its formula lives), float64; `make_grid`
maps them to the process's own clock t and keeps both, because exact-integration samplers need only
the s-grid while Euler–Maruyama steps by h·β(t_k) in the process's clock. Most schedules take
(T, δ) from the config; `lcw` and `ddpm_linear` fix their own horizon and end at δ = 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from diffusion_rates.process import Process


class Step(NamedTuple):
    """One reverse step from forward time s to s_next (OU clock).

    gamma = s - s_next is the exact OU step; euler_gamma = (t_k - t_{k+1})·β(t_k) is the step
    Euler–Maruyama takes when discretising in the process's own clock."""

    s: np.ndarray
    s_next: np.ndarray
    gamma: np.ndarray
    euler_gamma: np.ndarray


class Grid(NamedTuple):
    t: np.ndarray  # process clock, decreasing, N + 1 points
    s: np.ndarray  # OU clock, s = B(t)
    beta: np.ndarray  # β(t_k)

    @property
    def n_steps(self) -> int:
        return len(self.s) - 1

    def steps(self) -> Step:
        return Step(
            s=self.s[:-1],
            s_next=self.s[1:],
            gamma=self.s[:-1] - self.s[1:],
            euler_gamma=(self.t[:-1] - self.t[1:]) * self.beta[:-1],
        )


def _needs_early_stopping(schedule: str, delta: float) -> None:
    """For the schedules whose formula has log δ in it."""
    if delta <= 0:
        raise ValueError(f"delta: schedule={schedule} needs early stopping, a number > 0 (got 0)")


def _uniform_in(u, u_inverse, T: float, delta: float, n: int) -> np.ndarray:
    """The grid equally spaced in u(s) from u(T) to u(δ): s_k = u⁻¹(u(T) + (k/N)(u(δ) - u(T)))."""
    return np.asarray(u_inverse(np.linspace(u(T), u(delta), n + 1)), dtype=np.float64)


def uniform(process: Process, T: float, delta: float, n: int) -> np.ndarray:
    """Equal steps in the process's own clock t from B⁻¹(T) to B⁻¹(δ); returned in the OU clock."""
    return _uniform_in(process.inverse_clock, process.clock, T, delta, n)


def quadratic(process: Process, T: float, delta: float, n: int) -> np.ndarray:
    """Equal steps in √t, t the process's own clock, so t_k is quadratic in k (DDIM's
    "quadratic" skip, Song, Meng, Ermon 2021, App. D.2): fine steps near the data end."""
    return _uniform_in(
        lambda s: np.sqrt(process.inverse_clock(s)), lambda r: process.clock(r**2), T, delta, n
    )


def karras(process: Process, T: float, delta: float, n: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022 (Eq. 5): σ_k^{1/ρ} equally spaced from σ(T)^{1/ρ} to σ(δ)^{1/ρ}, with
    σ(s) = σ_s/a_s = √(e^{2s} - 1) the noise level of the unscaled (VE) variable;
    s = ½ log1p(σ²)."""
    return _uniform_in(
        lambda s: np.expm1(2.0 * s) ** (0.5 / rho),
        lambda r: 0.5 * np.log1p(r ** (2.0 * rho)),
        T,
        delta,
        n,
    )


def logsnr(process: Process, T: float, delta: float, n: int) -> np.ndarray:
    """Equal steps in log-SNR λ(s) = log(a²/σ²) = -log(e^{2s} - 1) (Kingma et al. 2021);
    s = ½ log1p(e^{-λ}). Needs δ > 0: λ(0) = ∞."""
    _needs_early_stopping("logsnr", delta)
    return _uniform_in(
        lambda s: -np.log(np.expm1(2.0 * s)), lambda lam: 0.5 * np.log1p(np.exp(-lam)), T, delta, n
    )


def bbdd(process: Process, T: float, delta: float, n: int) -> np.ndarray:
    """Half uniform, half geometric (BBDD Sec. 3; PAD Definition 9), in the OU clock.

    Linear phase s_k = T - κ_lin·k from T down to 1 in L steps, then geometric s_{L+m} =
    (1+κ)^{-m} from 1 to δ in M = N - L steps, κ = δ^{-1/M} - 1. L is the smallest count with
    κ_lin = (T-1)/L ≤ κ, so every step obeys γ_k ≤ κ·min(1, s_{k+1}), with equality in the
    geometric phase. For T ≤ 1 the grid is geometric from T to δ.
    """
    _needs_early_stopping("bbdd", delta)
    top = min(T, 1.0)
    if T <= 1.0:
        return np.geomspace(T, delta, n + 1)
    for L in range(1, n):
        kappa = (top / delta) ** (1.0 / (n - L)) - 1.0
        if (T - 1.0) / L <= kappa:
            break
    else:
        raise ValueError(f"steps: schedule=bbdd needs more steps for T={T}, delta={delta}")
    linear = np.linspace(T, 1.0, L + 1)
    geometric = np.geomspace(1.0, delta, n - L + 1)
    return np.concatenate([linear, geometric[1:]])


def bbdd_kappa(s: np.ndarray) -> float:
    """κ of a `bbdd` grid: the ratio γ_k / s_{k+1} of its last (geometric) step."""
    return float((s[-2] - s[-1]) / s[-1])


def lcw(n: int, c0: float = 2.0, c1: float = 10.0) -> np.ndarray:
    """Li, Cai, Wei 2025 (Eq. 14, their T is our N): ᾱ_N = N^{-c0},
    ᾱ_{t-1} = ᾱ_t + h ᾱ_t (1 - ᾱ_t) for t = N … 2 with h = c1 log N / N, and ᾱ_0 = 1; c1/c0 > 4.

    Then 1 - α_t = h σ_t²/(1 + h σ_t²) ≤ h. The recursion runs on σ² = 1 - ᾱ directly,
    σ²_{t-1} = σ²_t (1 - h ᾱ_t), because 1 - ᾱ_1 is about N^{-(c1-c0)} (5e-32 at N = 8192), far
    below the spacing of float64 next to 1; and, for the same reason at the other end
    (ᾱ_N = N^{-c0}), on ᾱ_{t-1} = ᾱ_t (1 + h σ²_t). Both factors are sums of positive terms when
    h < 1, so each carries full relative precision; s_t = -½ log ᾱ_t is taken from the smaller of
    the two. h ≥ 1 makes ᾱ overshoot 1 (N < 36 for c1 = 10) and is refused. No early stopping
    (δ = 0), and its own horizon s_N = (c0/2) log N. Returned in our order: s_0 = s_N > … > 0.
    """
    h = c1 * np.log(n) / n
    if h >= 1.0:
        raise ValueError(f"steps: schedule=lcw needs c1·log(N)/N < 1 (got N={n}: {h:.3g})")
    abar, var = np.ones(n + 1), np.zeros(n + 1)  # ᾱ_t, σ²_t in LCW's index t = 0 … N
    abar[n], var[n] = n ** (-c0), -np.expm1(-c0 * np.log(n))
    for t in range(n, 1, -1):
        abar[t - 1] = abar[t] * (1.0 + h * var[t])
        var[t - 1] = var[t] * (1.0 - h * abar[t])
    s = np.where(abar < 0.5, -0.5 * np.log(abar), -0.5 * np.log1p(-var))
    return s[::-1]


def ddpm_linear(
    n: int, beta_start: float = 1e-4, beta_end: float = 0.02, train_steps: int = 1000
) -> np.ndarray:
    """The discrete DDPM grid (Ho et al. 2020): β_i linear from 1e-4 to 0.02 for i = 1 … 1000,
    ᾱ_i = Π_{j≤i} (1 - β_j), ᾱ_0 = 1, so s_i = -½ Σ_{j≤i} log1p(-β_j). An N-step grid takes the
    N + 1 indices round(1000 k/N), k = N … 0 (N ≤ 1000), so it fixes its own horizon s_1000 and
    ends at s_0 = 0 (the last step gives x_0, as in DDPM's sampler)."""
    if n > train_steps:
        raise ValueError(f"steps: schedule=ddpm_linear takes at most {train_steps} (got {n})")
    betas = np.linspace(beta_start, beta_end, train_steps)
    s_all = np.concatenate([[0.0], -0.5 * np.cumsum(np.log1p(-betas))])
    # floor(x + 1/2) is monotone with unit jumps: N ≤ 1000 gives N + 1 distinct indices.
    index = np.floor(np.linspace(train_steps, 0, n + 1) + 0.5).astype(int)
    return s_all[index]


class Schedule(NamedTuple):
    """A registered schedule. `grid(process, T, δ, N, **params)` returns the s-grid from T to δ;
    with `own_horizon` it is `grid(N, **params)` and the schedule fixes both ends itself (the
    config's T and δ are not used)."""

    grid: Callable
    own_horizon: bool = False


SCHEDULES = {
    "uniform": Schedule(uniform),
    "bbdd": Schedule(bbdd),
    "quadratic": Schedule(quadratic),
    "karras": Schedule(karras),
    "logsnr": Schedule(logsnr),
    "lcw": Schedule(lcw, own_horizon=True),
    "ddpm_linear": Schedule(ddpm_linear, own_horizon=True),
}


def make_grid(process: Process, schedule: str, T: float, delta: float, n: int, **params) -> Grid:
    """The grid of `schedule` in both clocks; `params` are the schedule's own (cfg.schedule)."""
    entry = SCHEDULES[schedule]
    if entry.own_horizon:
        s = np.asarray(entry.grid(n, **params), dtype=np.float64)
    else:
        s = np.array(entry.grid(process, T, delta, n, **params), dtype=np.float64)  # a copy
        s[0], s[-1] = T, delta  # pin the ends exactly: round trips through u(s) move them by ulps
    t = np.asarray(process.inverse_clock(s), dtype=np.float64)
    return Grid(t=t, s=s, beta=np.asarray(process.beta(t), dtype=np.float64))
