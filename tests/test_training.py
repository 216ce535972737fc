"""Training: augmentation, the schedule, notebook 04's training resuming after an interruption without losing
anything, sizing a run to the machine, and test-accuracy curves."""

import json

import keras
import numpy as np
import pytest
from conftest import tiny_model, tiny_splits
from notebook04 import fit_mnist

from vgg_helpers.data import augmenter, training_dataset


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


# --- test-accuracy curves (notebooks 06 and 08) ------------------------------------------------------------


def test_images_seen_count_the_smaller_last_batch_of_each_pass():
    from vgg_helpers.training import TrainingCurve

    # notebook 06: a quarter of the training set, 13,750 images = 107 batches of 128 and one of 54, 4 evaluations
    curve = TrainingCurve("x", [0.5] * 4, [1.0] * 4, steps_per_eval=27, batch_size=128, train_examples=13_750)
    assert list(curve.examples_seen) == [3_456, 6_912, 10_368, 13_750]
    assert curve.train_seconds == 4.0 and list(curve.elapsed_seconds) == [1.0, 2.0, 3.0, 4.0]
    assert curve.images_per_second == pytest.approx(13_750 / 4)
    # 55,000 images, 430 steps per pass, an evaluation every 54 steps: the 12th is in the second pass
    curve = TrainingCurve("x", [0.5] * 12, [1.0] * 12, steps_per_eval=54, batch_size=128, train_examples=55_000)
    assert curve.examples_seen[-1] == 55_000 + (648 - 430) * 128


def test_train_and_evaluate_takes_a_schedule_a_compile_and_callbacks_that_run_before_each_evaluation(monkeypatch):
    from vgg_helpers.training import TestAccuracyClock, compile_classifier, train_and_evaluate

    seen, order = [], []

    def schedule(rate, total_steps):
        seen.append((rate, total_steps))
        return rate / 2

    def compile(model, rate):
        seen.append(rate)
        compile_classifier(model, keras.optimizers.SGD(rate))

    class Before(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            order.append(("callback", epoch))

    evaluate = TestAccuracyClock.on_epoch_end
    monkeypatch.setattr(
        TestAccuracyClock,
        "on_epoch_end",
        lambda clock, epoch, logs=None: order.append(("clock", epoch)) or evaluate(clock, epoch, logs),
    )
    curve = train_and_evaluate(
        "x", tiny_model(), tiny_splits(), 1, 64, 0.1, schedule, evals_per_epoch=2, compile=compile, callbacks=[Before()]
    )
    assert seen == [(0.1, 4), 0.05]  # 256 images in batches of 64: 4 steps, an evaluation every 2
    assert order == [("callback", 0), ("clock", 0), ("callback", 1), ("clock", 1)]
    assert len(curve.accuracies) == 2 and list(curve.examples_seen) == [128, 256]
    with pytest.raises(ValueError, match="'one-cycle', 'constant' or a function"):
        train_and_evaluate("x", tiny_model(), tiny_splits(), 1, 64, 0.1, "cosine")
