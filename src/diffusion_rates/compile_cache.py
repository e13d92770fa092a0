"""JAX's persistent compilation cache, shared by every process of the suite.

A sweep's jobs are separate runs, often separate processes (a launcher's workers, the claims'
sweeps run side by side by `make reproduce`), and most of a small job's time is compilation.
With the cache on, a program compiled once (same computation, shapes and constants) is read back
from disk by every later job and process instead of being compiled again: a sweep over seeds
compiles its programs once, and a rerun after a change elsewhere compiles only what changed.

The cache lives in `runs/.jax-cache` (relative to the working directory, like `runs/`), or in
$DIFFUSION_RATES_COMPILE_CACHE (`off` turns it off). It is bounded (LRU eviction at
MAX_BYTES), and bounding it is also what makes JAX take a file lock around every read and write,
so concurrent workers may share one directory. Everything is cached, however short its
compilation: a read costs about a millisecond, the smallest compilation twenty.
"""

from __future__ import annotations

import os

import jax

ENV = "DIFFUSION_RATES_COMPILE_CACHE"
DEFAULT_DIR = "runs/.jax-cache"
MAX_BYTES = 4 << 30


def enable(directory: str | None = None) -> str | None:
    """Point JAX at the cache directory (before the first compilation); returns it, or None
    when turned off."""
    where = os.environ.get(ENV) or directory or DEFAULT_DIR
    if where == "off":
        return None
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return where
