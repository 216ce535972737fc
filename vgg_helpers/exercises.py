"""Self-checks for the exercises at the end of each notebook.

An exercise cell leaves its answer as ``None``; the check cell below it calls::

    vh.exercises.check("00-rarest-digit", rarest_digit, y_train=y_train)

which prints "not answered yet" and returns ``False`` for ``None`` (so *Run All* still reaches
the end of the notebook), raises ``AssertionError`` with a hint for a wrong answer, and prints
a tick and returns ``True`` for a right one. Each notebook's hidden solution cell runs the same
check on the solution.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

_CHECKERS: dict[str, Callable[..., None]] = {}


def checker(key: str):
    """Register ``func(answer, **context)`` as the check of exercise ``key``; it raises on a wrong answer."""

    def register(func):
        if key in _CHECKERS:
            raise ValueError(f"exercise {key!r} is registered twice.")
        _CHECKERS[key] = func
        return func

    return register


def check(key: str, answer, **context) -> bool:
    """Check ``answer`` to exercise ``key``: ``False`` if unanswered, ``AssertionError`` if wrong."""
    if key not in _CHECKERS:
        raise ValueError(f"no exercise called {key!r}; known: {', '.join(sorted(_CHECKERS))}.")
    if answer is None or answer is Ellipsis:
        print(f"{key}: not answered yet. Replace the None above with your answer and run both cells.")
        return False
    _CHECKERS[key](answer, **context)
    print(f"{key}: ✓ correct")
    return True


# --- 00_start_here ------------------------------------------------------------------------------

@checker("00-rarest-digit")
def _rarest_digit(answer, y_train):
    counts = np.bincount(np.asarray(y_train), minlength=10)
    assert isinstance(answer, (int, np.integer)), f"answer with one digit 0-9 as an int, not {answer!r}"
    assert answer == int(counts.argmin()), (
        f"digit {answer} has {counts[answer]:,} training images; another class has fewer. "
        "Hint: np.bincount(y_train) counts the images of each class."
    )


@checker("00-mean-pixel")
def _mean_pixel(answer, x_train):
    expected = float(np.asarray(x_train, dtype=np.float64).mean() / 255.0)
    assert 0.0 <= float(answer) <= 1.0, (
        f"{answer} is outside [0, 1]: did you divide the uint8 pixels by 255?"
    )
    assert abs(float(answer) - expected) < 1e-3, (
        f"{float(answer):.4f} is not the mean of the scaled pixels. Hint: (x_train / 255).mean()."
    )
