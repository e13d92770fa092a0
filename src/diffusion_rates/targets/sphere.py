"""`sphere`: the uniform law on S^k_r ⊂ R^{k+1} ⊂ R^D, and its noised laws in closed form.

With a = a_s, σ² = σ_s², ν = (k-1)/2, x_∥ the coordinates of x - a c in the (k+1)-dim span and
x_⊥ the rest, ρ = |x_∥| and κ = a r ρ/σ² (details and derivation in `manifold`):

    q_s(x) = (2πσ²)^{-D/2} exp(-(ρ² + a²r² + |x_⊥|²)/(2σ²)) Γ((k+1)/2) (2/κ)^ν I_ν(κ),
    ∇ log q_s(x) = -(x - a c)/σ² + (a r/σ²) R_ν(κ) x_∥/ρ,   E[X_0 | X_s = x] = c + r R_ν(κ) x_∥/ρ,

R_ν = I_{ν+1}/I_ν; at κ = 0 the Bessel factor is 1. `normalisation`: `centred` (c = 0) or `pad`
(0 on the sphere, diameter 2r <= 1: Potaptchik, Azangulov & Deligiannidis 2025).
"""

from __future__ import annotations

from diffusion_rates.targets.manifold import SphereProduct, sphere_product, validate_keys


def layout(k: int) -> tuple[int, int]:
    """One block of dimension k + 1."""
    return 1, k + 1


def sphere(
    d: int,
    intrinsic_dim: int,
    radius: float = 0.5,
    normalisation: str = "centred",
    rotate: bool = True,
    seed: int = 0,
) -> SphereProduct:
    """S^k_r in R^D, k = intrinsic_dim; radius 0.5 gives diameter 1."""
    return sphere_product("sphere", d, *layout(intrinsic_dim), radius, normalisation, rotate, seed)


def validate_config(c) -> None:
    validate_keys(c, layout, "intrinsic_dim + 1")


def from_config(c) -> SphereProduct:
    return sphere(c.d, c.intrinsic_dim, c.radius, c.normalisation, c.rotate, c.seed)
