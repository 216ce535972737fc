"""Notebook 04's training cell as a function, for the tests: its callbacks in a run folder, its schedule, its
``fit``. The tests of run folders drive it (crashes, resumes, two processes); ``test_notebook_code.py`` checks
that its callbacks are the ones the notebook writes and its schedule the notebook's."""

import keras
import numpy as np

from vgg_helpers import runs
from vgg_helpers.data import check_images, make_dataset, training_dataset
from vgg_helpers.diagnostics import EarlyWarning
from vgg_helpers.training import compile_classifier, warmup_cosine


def standard_callbacks(run) -> list:
    """The callbacks of notebook 04's training cell, for a run folder."""
    return [
        keras.callbacks.BackupAndRestore(run.backup_dir, double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(
            run.checkpoint_path, monitor="val_accuracy", save_best_only=True, initial_value_threshold=run.best_score
        ),
        run.recorder(monitor="val_accuracy"),
        EarlyWarning(),
    ]


def fit_mnist(model, splits, runs_root, epochs, batch_size=128, learning_rate=3e-3, augment=True, callbacks=(), verbose="auto"):
    """Train ``model`` on ``splits["train"]``, validating on ``splits["val"]``, in a run folder under ``runs_root``
    (:mod:`vgg_helpers.runs`), with Adam on :func:`~vgg_helpers.training.warmup_cosine` (warm-up over the first
    epoch, at most a quarter of the run). Returns ``(history, run)``. Empty or wrongly scaled images, a folder
    that is not writable or another process in the same run raise before training starts."""
    for name in ("train", "val"):
        check_images(*splits[name], what=f"{name} images")
    train_ds = training_dataset(*splits["train"], batch_size=batch_size, augment=augment)
    val_ds = make_dataset(*splits["val"], batch_size=512)
    steps_per_epoch = int(np.ceil(len(splits["train"][0]) / batch_size))
    total = steps_per_epoch * epochs
    config = {
        "parameters": model.count_params(), "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
        "augment": augment, "train_examples": len(splits["train"][0]),
    }  # fmt: skip
    run = runs.start(runs_root, config)
    with run:
        compile_classifier(model, keras.optimizers.Adam(warmup_cosine(learning_rate, total, min(steps_per_epoch, total // 4))))
        history = model.fit(
            train_ds, validation_data=val_ds, epochs=epochs, shuffle=False, callbacks=standard_callbacks(run) + list(callbacks),
            verbose=verbose,
        )  # fmt: skip
    return history, run
