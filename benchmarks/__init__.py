"""The maintainers' benchmarks, run from the repository's root as ``python -m benchmarks`` (see ``__main__``).

Not part of ``vgg_helpers``, which holds only what the notebooks use. ``recipe``: the benchmark's VGG (conv
widths in the blog's notation, fused BatchNorm, label smoothing, each configuration's optimizer and schedule);
``sweep``: its training runs, the configurations tried, their legend, progress lines and tables; ``speed``:
one configuration's training speed and the full-width model's step; ``notebooks``: each notebook's run time
and memory, and the table README.md and docs/teaching.md show; ``machine``: the CPU, cores, oneDNN and peak
memory. ``depth_keras_jax.py`` is a script of its own (Keras on JAX, for a GPU machine without TensorFlow).
"""

import vgg_helpers  # noqa: F401 - first: it imports TensorFlow with its start-up logs hidden, before Keras does
