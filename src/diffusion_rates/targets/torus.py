"""`torus`: the uniform law on the flat torus (S¹_r)^k ⊂ R^{2k} ⊂ R^D, and its noised laws.

A product of k circles, one per plane of the 2k-dim span (details in `manifold`). With a = a_s,
σ² = σ_s², x_j the coordinates of x - a c in plane j, ρ_j = |x_j|, κ_j = a r ρ_j/σ² and x_⊥ the
D - 2k coordinates off the span:

    q_s(x) = Π_j exp(-(ρ_j² + a²r²)/(2σ²)) I₀(κ_j)/(2πσ²) · (2πσ²)^{-(D-2k)/2} exp(-|x_⊥|²/(2σ²)),
    ∇ log q_s(x) = -(x - a c)/σ² + Σ_j (a r/σ²)(I₁/I₀)(κ_j) x_j/ρ_j,
    E[X_0 | X_s = x] = c + Σ_j r (I₁/I₀)(κ_j) x_j/ρ_j.

`normalisation`: `centred` (c = 0) or `pad` (0 on the torus, diameter 2r√k <= 1: Potaptchik,
Azangulov & Deligiannidis 2025).
"""

from __future__ import annotations

from diffusion_rates.targets.manifold import SphereProduct, sphere_product, validate_keys


def layout(k: int) -> tuple[int, int]:
    """k blocks (circle planes) of dimension 2."""
    return k, 2


def torus(
    d: int,
    intrinsic_dim: int,
    radius: float = 0.5,
    normalisation: str = "centred",
    rotate: bool = True,
    seed: int = 0,
) -> SphereProduct:
    """(S¹_r)^k in R^D, k = intrinsic_dim; its diameter is 2r√k."""
    return sphere_product("torus", d, *layout(intrinsic_dim), radius, normalisation, rotate, seed)


def validate_config(c) -> None:
    validate_keys(c, layout, "2 * intrinsic_dim")


def from_config(c) -> SphereProduct:
    return torus(c.d, c.intrinsic_dim, c.radius, c.normalisation, c.rotate, c.seed)
