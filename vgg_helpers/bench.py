"""Moved: the benchmark is the maintainers' package ``benchmarks`` at the repository's root, ``python -m benchmarks``."""

import sys

_MOVED = "vgg_helpers.bench has moved: from the repository's root, run python -m benchmarks (same options)"

if __name__ != "__main__":
    raise ImportError(_MOVED)
sys.exit(_MOVED)
