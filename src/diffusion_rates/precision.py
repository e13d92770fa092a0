"""The working precision of the Monte Carlo loops: `precision=float64|float32`.

float64 (the default) runs everything in double precision. float32 runs the reverse chains and
the Monte Carlo estimators built on them (sample-based metrics, `strong`, `density_ratio`,
`path_mc`) in single precision, where a 2-core CPU does about twice the arithmetic and a GPU far
more; the exact laws (`exact_gaussian`, `quadrature`), the measured score error, every
estimator's sums over samples and the rate fits stay in float64. Every record says which
precision it was measured in (column `precision`); the README says, with a measurement, which
values move in float32 and by how much.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

PRECISIONS = {"float64": jnp.float64, "float32": jnp.float32}


def with_dtype(obj, dtype):
    """`obj` (a target, a score-error model: any nesting of dataclasses, named tuples, dicts and
    arrays) with every floating-point array cast to `dtype`; other leaves unchanged."""
    if isinstance(obj, jax.Array | np.ndarray):
        return jnp.asarray(obj, dtype) if jnp.issubdtype(obj.dtype, jnp.floating) else obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {
            f.name: with_dtype(getattr(obj, f.name), dtype)
            for f in dataclasses.fields(obj)
            if f.init
        }
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, tuple) and hasattr(obj, "_replace"):
        return obj._replace(**{k: with_dtype(v, dtype) for k, v in obj._asdict().items()})
    if isinstance(obj, dict):
        return {k: with_dtype(v, dtype) for k, v in obj.items()}
    return obj
