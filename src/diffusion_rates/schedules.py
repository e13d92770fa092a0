"""Time grids T = s_0 > s_1 > … > s_N = δ for the reverse samplers.

A schedule returns forward times in the OU clock s (where its formula lives), float64; `make_grid`
maps them to the process's own clock t and keeps both, because exact-integration samplers need only
the s-grid while Euler–Maruyama steps by h·β(t_k) in the process's clock.
"""

from __future__ import annotations

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


def uniform(process: Process, T: float, delta: float, n: int) -> np.ndarray:
    """Equal steps in the process's own clock from B⁻¹(T) to B⁻¹(δ); returned in the OU clock."""
    t = np.linspace(float(process.inverse_clock(T)), float(process.inverse_clock(delta)), n + 1)
    return np.asarray(process.clock(t), dtype=np.float64)


def bbdd(process: Process, T: float, delta: float, n: int) -> np.ndarray:
    """Half uniform, half geometric (BBDD Sec. 3; PAD Definition 9), in the OU clock.

    Linear phase s_k = T - κ_lin·k from T down to 1 in L steps, then geometric s_{L+m} =
    (1+κ)^{-m} from 1 to δ in M = N - L steps, κ = δ^{-1/M} - 1. L is the smallest count with
    κ_lin = (T-1)/L ≤ κ, so every step obeys γ_k ≤ κ·min(1, s_{k+1}), with equality in the
    geometric phase. For T ≤ 1 the grid is geometric from T to δ.
    """
    if delta <= 0:
        raise ValueError("delta: schedule=bbdd needs early stopping, delta > 0")
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


SCHEDULES = {"uniform": uniform, "bbdd": bbdd}


def make_grid(process: Process, schedule: str, T: float, delta: float, n: int) -> Grid:
    s = np.asarray(SCHEDULES[schedule](process, T, delta, n), dtype=np.float64)
    s[0], s[-1] = T, delta  # pin the ends exactly: round trips through the clock move them by ulps
    t = np.asarray(process.inverse_clock(s), dtype=np.float64)
    return Grid(t=t, s=s, beta=np.asarray(process.beta(t), dtype=np.float64))
