"""Training: augmentation, the schedule, and fit_mnist resuming after an interruption without losing anything."""

import json

import keras
import numpy as np
import pytest
from conftest import tiny_model, tiny_splits

from vgg_helpers.data import augmenter, training_dataset
from vgg_helpers.training import fit_mnist


def test_augmenter_keeps_shape_and_range():
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    out = keras.ops.convert_to_numpy(augmenter()(images, training=True))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1.0 + 1e-6
    assert not np.allclose(out, images)  # something moved
    np.testing.assert_allclose(keras.ops.convert_to_numpy(augmenter()(images, training=False)), images)


def test_training_dataset_batches():
    splits = tiny_splits()
    batches = list(training_dataset(*splits["train"], batch_size=100))
    assert [b[0].shape[0] for b in batches] == [100, 100, 56]
    assert batches[0][0].shape[1:] == (28, 28, 1)


class Interrupt(keras.callbacks.Callback):
    """Raises at the end of one epoch, like a Colab disconnect."""

    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt(f"simulated disconnect after epoch {epoch + 1}")


def test_resume_after_interruption(tmp_path, capsys):
    splits = tiny_splits()
    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit_mnist(tiny_model(), splits, tmp_path, epochs=3, batch_size=64, augment=False, callbacks=[Interrupt(0)], verbose=0)
    run_dir = tmp_path / "1"
    assert (run_dir / "backup").exists() and not (run_dir / "finished.json").exists()
    first = json.loads((run_dir / "best.json").read_text())
    assert first["epoch"] == 1 and (run_dir / first["file"]).exists()
    # The same call again, with a fresh model, picks up where it stopped: epochs 2 and 3 only.
    history, run = fit_mnist(tiny_model(), splits, tmp_path, epochs=3, batch_size=64, augment=False, verbose=0)
    out = capsys.readouterr().out
    assert "resuming the unfinished run" in out and "continues after epoch 1 (backup checksums verified)" in out
    assert run.path == run_dir and history.epoch == [1, 2]
    assert not (run_dir / "backup").exists()  # removed once training finished
    assert run.finished()["status"] == "complete" and run.finished()["epochs"] == 3
    record = run.best()
    all_scores = [first["score"], *history.history["val_accuracy"]]
    # The best checkpoint is the best of all three epochs, the one before the interruption included,
    # and best.json names the epoch it came from.
    assert record["score"] == pytest.approx(max(all_scores), abs=1e-6)
    assert record["epoch"] == 1 + int(np.argmax(all_scores))
    best = run.load_best()
    x_val = splits["val"][0][..., None].astype("float32") / 255
    accuracy = np.mean(best.predict(x_val, verbose=0).argmax(axis=1) == splits["val"][1])
    assert accuracy == pytest.approx(record["score"], abs=1e-6)
    assert sorted(p.name for p in run_dir.glob("best-epoch*.keras")) == [record["file"]]  # the losers are gone


def test_another_configuration_starts_a_new_run_and_keeps_the_unfinished_one(tmp_path, capsys):
    splits = tiny_splits()
    with pytest.raises(KeyboardInterrupt):
        fit_mnist(tiny_model(), splits, tmp_path, epochs=3, batch_size=64, augment=False, callbacks=[Interrupt(0)], verbose=0)
    _, run = fit_mnist(tiny_model(), splits, tmp_path, epochs=2, batch_size=64, augment=False, verbose=0)
    assert (
        run.path == tmp_path / "2" and "unfinished runs of other configurations, kept as they are: 1" in capsys.readouterr().out
    )
    assert (tmp_path / "1" / "backup").exists()  # nothing lost: run 1 can still be resumed
    _, resumed = fit_mnist(tiny_model(), splits, tmp_path, epochs=3, batch_size=64, augment=False, verbose=0)
    assert resumed.path == tmp_path / "1" and resumed.resumed


def test_fit_mnist_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="must be positive"):
        fit_mnist(tiny_model(), tiny_splits(), tmp_path, epochs=0)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_warmup_cosine_is_one_cycle():
    from vgg_helpers.training import warmup_cosine

    schedule = warmup_cosine(0.02, total_steps=100)
    rates = np.array([float(schedule(step)) for step in range(101)])
    assert rates[0] == pytest.approx(0.002)  # starts at a tenth of the peak
    assert rates.argmax() == 25 and rates.max() == pytest.approx(0.02)  # peak after a quarter
    assert rates[100] == pytest.approx(0.0002)  # ends at a hundredth of the peak
    assert np.all(np.diff(rates[:26]) > 0) and np.all(np.diff(rates[25:]) < 0)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0.02, total_steps=10, warmup_steps=10)


def test_use_accelerator_sets_the_policy():
    from vgg_helpers.training import use_accelerator

    try:
        assert "mixed_float16" in use_accelerator(has_gpu=True)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        model = tiny_model()
        assert model.layers[-1].compute_dtype == "float32"  # logits stay float32
        assert model.layers[1].compute_dtype == "float16"
        assert "float32" in use_accelerator(has_gpu=False)
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_fit_mnist_returns_free_memory_after_each_epoch(tmp_path, monkeypatch):
    from vgg_helpers import runtime

    calls = []
    monkeypatch.setattr(runtime, "_malloc_trim", lambda *_: calls.append("trim") or True)
    fit_mnist(tiny_model(), tiny_splits(), tmp_path, epochs=2, batch_size=64, augment=False, verbose=0)
    assert calls == ["trim", "trim"]


# --- sizing training to the machine ------------------------------------------------------------------


def test_a_fast_machine_trains_longer_and_is_promised_more():
    from vgg_helpers.runtime import BUDGETS
    from vgg_helpers.training import size_training

    cpu = BUDGETS["cpu"]
    fast_machine = size_training(cpu, images_per_second=2000, train_examples=55_000, val_examples=5_000)
    assert fast_machine.epochs == cpu.epochs == 8 and fast_machine.augment and fast_machine.target == 0.993
    assert fast_machine.seconds <= 300
    middle = size_training(cpu, images_per_second=800, train_examples=55_000, val_examples=5_000)
    assert middle.epochs == 4 and not middle.augment and middle.target == 0.990 and middle.seconds <= 300
    assert middle.learning_rate == 0.02 and fast_machine.learning_rate == 0.01
    assert "800 images/s" in str(middle) and "4 epochs" in str(middle) and "99.0%" in str(middle)
    # the estimate counts the validation pass after each epoch (a third of a training image's work per image)
    assert middle.seconds == pytest.approx(4 * (55_000 + 5_000 / 3) / 800 + 10)


def test_a_plan_that_augments_is_sized_at_the_speed_with_augmentation():
    from vgg_helpers.runtime import BUDGETS
    from vgg_helpers.training import size_training

    cpu = BUDGETS["cpu"]
    plain = size_training(cpu, images_per_second=1400, train_examples=55_000, val_examples=5_000)
    assert plain.epochs == 7 and plain.augment and plain.images_per_second == 1400
    slower = size_training(cpu, 1400, 55_000, val_examples=5_000, augmented_images_per_second=1300)
    assert slower.epochs == 6 and slower.augment and slower.images_per_second == 1300 and slower.seconds <= 300
    # Six augmented epochs would not fit: five epochs without augmentation, at the plain speed
    too_slow = size_training(cpu, 1400, 55_000, val_examples=5_000, augmented_images_per_second=1000)
    assert (too_slow.epochs, too_slow.augment, too_slow.target, too_slow.learning_rate) == (5, False, 0.990, 0.02)
    assert too_slow.images_per_second == 1400 and too_slow.seconds <= 300


def test_a_slow_machine_gets_the_fewest_epochs_that_keep_the_promise_and_is_told():
    from vgg_helpers.runtime import BUDGETS
    from vgg_helpers.training import size_training

    slow = size_training(BUDGETS["cpu"], images_per_second=150, train_examples=55_000, val_examples=5_000)
    assert slow.epochs == 2 and slow.target == 0.990
    assert slow.seconds > 300 and "more than the 5 minutes aimed at" in str(slow)
    with pytest.raises(ValueError, match="positive speed"):
        size_training(BUDGETS["cpu"], images_per_second=0, train_examples=55_000)


def test_the_gpu_and_fast_budgets_keep_their_sizes():
    from vgg_helpers.runtime import BUDGETS
    from vgg_helpers.training import size_training

    gpu = size_training(BUDGETS["gpu"], images_per_second=20_000, train_examples=55_000)
    assert (gpu.width, gpu.epochs, gpu.target) == (1.0, BUDGETS["gpu"].epochs, 0.996)
    fast = size_training(BUDGETS["fast"], images_per_second=100, train_examples=2_000)
    assert (fast.epochs, fast.target) == (1, None)


def test_measuring_the_speed_leaves_the_model_as_it_was():
    from vgg_helpers.training import measure_training_speed

    model = tiny_model()
    before = [w.copy() for w in model.get_weights()]
    x, y = tiny_splits()["train"]
    speed = measure_training_speed(model, x, y, batch_size=32, steps=3)
    assert speed > 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_step_clock_times_the_steps_after_the_warm_up_and_nothing_else(monkeypatch):
    import vgg_helpers.training as training

    times = iter([1.0, 2.0, 2.5, 3.0, 3.5])  # the ends of steps 0-4: step 0 is the warm-up (tracing)
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(times))
    clock = training.StepClock(start_after=1)
    for batch in range(5):
        clock.on_train_batch_end(batch)
    # whatever happens after the last step (fit tearing down its input pipeline) is not on this clock
    assert (clock.steps, clock.seconds) == (4, 2.5)
    with pytest.raises(ValueError, match="no steps were timed"):
        _ = training.StepClock(start_after=3).seconds


def test_smoothed_sparse_crossentropy_is_keras_smoothing_on_integer_labels():
    from vgg_helpers.training import SmoothedSparseCrossentropy

    logits = np.random.default_rng(0).normal(size=(6, 10)).astype("float32")
    labels = np.array([0, 3, 9, 1, 1, 7])
    one_hot = np.eye(10, dtype="float32")[labels]
    expected = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(one_hot, logits)
    for shape in [(6,), (6, 1)]:  # Keras hands labels over as a column too
        got = SmoothedSparseCrossentropy(0.1)(labels.reshape(shape), logits)
        np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(SmoothedSparseCrossentropy(0.1)(labels, logits)) != pytest.approx(float(sparse))
    np.testing.assert_allclose(float(SmoothedSparseCrossentropy(0.0)(labels, logits)), float(sparse), rtol=1e-6)


def test_accuracy_clock_evaluates_the_moving_average_and_trains_on_from_the_weights():
    from vgg_helpers.data import make_dataset
    from vgg_helpers.training import TestAccuracyClock, compile_classifier

    splits = tiny_splits()
    keras.utils.set_random_seed(0)
    model = compile_classifier(tiny_model(), keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.9))
    for x, y in training_dataset(*splits["train"], batch_size=64):  # fit would end on the average
        model.train_on_batch(x, y)
    test_ds = make_dataset(*splits["test"], batch_size=64)
    live = [w.numpy() for w in model.trainable_variables]
    clock = TestAccuracyClock(test_ds)
    clock.set_model(model)
    got = clock._test_accuracy()
    for w, before in zip(model.trainable_variables, live, strict=True):
        np.testing.assert_array_equal(w.numpy(), before)  # training goes on from the weights, not the average
    model.optimizer.finalize_variable_values(model.trainable_variables)
    assert not all(np.array_equal(w.numpy(), v) for w, v in zip(model.trainable_variables, live, strict=True))
    assert got == pytest.approx(model.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"])


def test_train_and_evaluate_rejects_a_warm_up_or_smoothing_outside_zero_to_one():
    from vgg_helpers.training import train_and_evaluate

    for bad in [dict(warmup=1.0), dict(label_smoothing=-0.1)]:
        with pytest.raises(ValueError, match="fractions"):
            train_and_evaluate("x", tiny_model(), tiny_splits(), 1, 64, 0.01, "one-cycle", **bad)


def test_compile_classifier_lets_fit_trace_the_training_step_once_with_working_metrics():
    from vgg_helpers.training import compile_classifier

    splits = tiny_splits()
    keras.utils.set_random_seed(0)
    model = compile_classifier(tiny_model(), keras.optimizers.Adam(1e-3))
    assert model.metrics_variables and all(float(v.numpy()) == 0 for v in model.metrics_variables)  # built, then reset
    traces = []
    train_step = model.train_step
    model.train_step = lambda data: traces.append(1) or train_step(data)  # runs only while tf.function traces
    history = model.fit(training_dataset(*splits["train"], batch_size=64, augment=False), epochs=2, shuffle=False, verbose=0)
    assert len(traces) == 1  # without the metrics built eagerly, Keras creates them in the trace and it runs twice
    x, y = splits["test"]
    expected = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == pytest.approx(expected)
    assert len(history.history["accuracy"]) == 2
