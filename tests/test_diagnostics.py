"""Diagnostics on small models with known scales; the early-warning callback; the init explorer."""

import math

import keras
import numpy as np
import pytest

from vgg_helpers import diagnostics as d
from vgg_helpers import widgets
from vgg_helpers.architectures import Architecture, blog_vgg, conv, dense
from vgg_helpers.models import build_model
from vgg_helpers.training import short_run


def tiny_model():
    """Input 2×2×1 → 1×1 conv with kernel [1, −1] + ReLU → dense(3) with all-ones kernel."""
    arch = Architecture("tiny", (conv(2, kernel=1), dense(3, relu=False, scale=False)), (2, 2, 1))
    model = build_model(arch)
    model.get_layer("conv1").set_weights([np.array([[[[1.0, -1.0]]]], "float32"), np.zeros(2, "float32")])
    model.get_layer("fc1").set_weights([np.ones((8, 3), "float32"), np.zeros(3, "float32")])
    return model


def test_expected_initial_loss():
    assert d.expected_initial_loss(10) == pytest.approx(2.302585, abs=1e-6)
    with pytest.raises(ValueError):
        d.expected_initial_loss(1)


def test_initial_loss_of_equal_logits_is_ln_classes():
    model = tiny_model()
    model.get_layer("fc1").set_weights([np.zeros((8, 3), "float32"), np.zeros(3, "float32")])
    x = np.ones((4, 2, 2, 1), "float32")
    assert d.initial_loss(model, x, np.array([0, 1, 2, 0])) == pytest.approx(math.log(3), rel=1e-6)


def test_check_initial_loss(capsys):
    assert d.check_initial_loss(2.35) is True
    assert "✓" in capsys.readouterr().out
    assert d.check_initial_loss(2.0e6) is False
    assert "far too large" in capsys.readouterr().out
    assert d.check_initial_loss(float("nan")) is False
    assert "overflowed" in capsys.readouterr().out
    verdicts = [d.initial_loss_ok(v) for v in (2.30, 2.79, 2.81, 1.79, 29.1, float("inf"))]
    assert verdicts == [True, True, False, False, False, False]


def test_activation_stats_known_values():
    stats = d.activation_stats(tiny_model(), np.full((5, 2, 2, 1), 3.0, "float32"))
    level, logits = stats
    assert [r.name for r in stats] == ["conv level 1", "logits"]
    # Channel 0 is relu(3) = 3, channel 1 is relu(-3) = 0 everywhere: half the units are dead.
    assert level.std == pytest.approx(1.5) and level.mean == pytest.approx(1.5) and level.max_abs == 3.0
    assert level.dead == 0.5 and level.finite == 1.0 and level.squares_finite == 1.0
    assert logits.std == 0 and logits.mean == pytest.approx(4 * 3.0)  # four pixels of 3 summed
    assert "conv level 1" in str(stats) and "<table" in stats._repr_html_()


def test_squares_that_overflow_float32_are_flagged():
    stats = d.activation_stats(tiny_model(), np.full((2, 2, 2, 1), 1e20, "float32"))
    assert stats[0].finite == 1.0 and stats[0].squares_finite == 0.5  # (1e20)² > 3.4e38; 0² is fine


def test_scale_prediction_matches_measurement_for_random_weights():
    arch = Architecture("dense", (dense(512, relu=False, scale=False),), (1, 1, 256))
    keras.utils.set_random_seed(1)
    model = build_model(arch, initializer="blog")
    x = np.random.default_rng(0).normal(size=(256, 1, 1, 256)).astype("float32")
    (row,) = d.scale_predictions(model, x)
    kernel = model.get_layer("fc1").get_weights()[0]
    assert row.fan_in == 256
    assert row.predicted_std == pytest.approx(math.sqrt(256 * kernel.var() * np.mean(x.astype(float) ** 2)))
    assert row.measured_std == pytest.approx(row.predicted_std, rel=0.1)  # ≈ 16 both


def test_mean_and_variance_in_chunks_match_numpy_in_float64():
    values = np.random.default_rng(2).normal(3.0, 2.0, size=(1000, 7)).astype("float32")
    mean, variance = d._mean_and_variance(values, chunk=999)  # chunks that do not divide the size
    exact = values.astype(np.float64)
    assert mean == pytest.approx(exact.mean(), rel=1e-12) and variance == pytest.approx(exact.var(), rel=1e-9)
    assert d._mean_and_variance(np.array([1.0, np.inf], "float32"))[1] == math.inf
    with pytest.raises(ValueError, match="empty"):
        d._mean_and_variance(np.zeros((0, 3)))


def test_gradient_stats():
    stats = d.gradient_stats(tiny_model(), np.random.default_rng(0).random((4, 2, 2, 1)), np.array([0, 1, 2, 0]))
    assert list(stats.index) == ["conv1", "fc1"]
    assert (stats["norm"] > 0).all() and (stats["not finite"] == 0).all() and (stats["g² overflows float32"] == 0).all()


def test_gradient_stats_taken_in_groups_equal_one_backward_pass():
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    model = build_model(blog_vgg(), width=1 / 32)  # 16 convs, 3 dense layers
    x, y = np.random.default_rng(3).random((4, 28, 28, 1)).astype("float32"), np.array([1, 2, 3, 4])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=False), from_logits=True))
    named = d.weight_layers(model)
    grads = tape.gradient(loss, [layer.kernel for _, layer in named])
    stats = d.gradient_stats(model, x, y)
    assert list(stats.index) == [name for name, _ in named] and len(stats) == 19
    assert list(stats["norm"]) == pytest.approx([np.linalg.norm(g.numpy().astype(np.float64)) for g in grads], rel=1e-5)
    assert list(stats["largest |g|"]) == pytest.approx([float(np.abs(g.numpy()).max()) for g in grads], rel=1e-6)


def test_gradient_stats_measure_what_a_float32_norm_cannot():
    """A gradient with entries above 1.8e19 is finite, but its float32 norm overflows: the float64 norm does not."""
    import tensorflow as tf

    model = tiny_model()
    model.get_layer("conv1").set_weights([np.array([[[[1e21, -1e21]]]], "float32"), np.zeros(2, "float32")])
    model.get_layer("fc1").set_weights([np.eye(8, 3, dtype="float32"), np.zeros(3, "float32")])
    x, y = np.random.default_rng(0).random((4, 2, 2, 1)), np.array([0, 1, 2, 0])
    stats = d.gradient_stats(model, x, y)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x.astype("float32")), from_logits=True))
    g = tape.gradient(loss, model.get_layer("fc1").kernel)
    assert not np.isfinite(float(tf.norm(g)))  # the float32 norm overflows...
    assert stats.loc["fc1", "not finite"] == 0 and np.isfinite(stats.loc["fc1", "norm"])  # ...the gradient does not
    assert stats.loc["fc1", "g² overflows float32"] > 0


def _dataset(x, y):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()


def test_early_warning_flags_a_huge_first_loss(capsys):
    model = tiny_model()
    model.get_layer("fc1").set_weights(
        [np.random.default_rng(0).normal(0, 1e4, (8, 3)).astype("float32"), np.zeros(3, "float32")]
    )
    warning = d.EarlyWarning(classes=3)
    x = np.random.default_rng(1).random((8, 2, 2, 1)).astype("float32")
    run = short_run(model, _dataset(x, np.array([0, 1, 2, 0, 1, 2, 0, 1])), steps=2, callbacks=[warning])
    assert len(run["loss"]) == 2 and run["loss"][0] > 10 * math.log(3)
    assert len(warning.messages) == 1 and "first batch's loss" in warning.messages[0]
    assert "initialisation scale" in capsys.readouterr().out


def test_early_warning_stops_on_nan():
    model = tiny_model()
    kernel = np.ones((8, 3), "float32")
    kernel[0, 0] = np.nan  # a planted NaN weight makes every logit, and the loss, NaN
    model.get_layer("fc1").set_weights([kernel, np.zeros(3, "float32")])
    x = np.random.default_rng(1).random((8, 2, 2, 1)).astype("float32") + 0.1
    warning = d.EarlyWarning(classes=3)
    run = short_run(model, _dataset(x, np.zeros(8, "int64")), steps=5, callbacks=[warning])
    assert len(run["loss"]) == 1 and math.isnan(run["loss"][0])  # stopped after the first step
    assert any("training stopped" in m for m in warning.messages)


def test_early_warning_quiet_on_a_sane_model():
    model = tiny_model()
    model.get_layer("fc1").set_weights([np.zeros((8, 3), "float32"), np.zeros(3, "float32")])
    warning = d.EarlyWarning(classes=3)
    x = np.random.default_rng(1).random((8, 2, 2, 1)).astype("float32")
    short_run(model, _dataset(x, np.array([0, 1, 2, 0, 1, 2, 0, 1])), steps=3, callbacks=[warning])
    assert warning.messages == []


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.random((16, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 16)


def test_init_scales(batch):
    x, y = batch
    stats, loss = widgets.init_scales("normal", 1.0, True, False, x, y, width=1 / 16)
    assert len(stats) == 19 and loss > 1e3
    _, he_loss = widgets.init_scales("he_normal", 1.0, False, True, x, y, width=1 / 16)
    assert abs(he_loss - math.log(10)) < 0.5
    _, tiny_loss = widgets.init_scales("normal", 0.01, False, False, x, y, width=1 / 16)
    assert abs(tiny_loss - math.log(10)) < 1e-3  # vanished: every logit ≈ 0
    with pytest.raises(ValueError, match="initializer must be one of"):
        widgets.init_scales("orthogonal", 1.0, True, False, x, y)
    with pytest.raises(ValueError, match="stddev must be positive"):
        widgets.init_scales("normal", 0.0, True, False, x, y)


def test_init_explorer_updates_on_change(batch):
    ui = widgets.init_explorer(*batch, width=1 / 16)
    text = ui.controls["text"]
    assert "normal σ=1 + LRN" in text.value and "✗ far from" in text.value
    ui.controls["initializer"].value = "he_normal"
    assert "he_normal + LRN" in text.value and "✓ close to" in text.value
    assert ui.controls["stddev"].disabled


def test_gradient_measurement_in_chunks_equals_the_whole_array():
    """Measured a chunk at a time (bounded memory at full width) and in one float64 piece: the same."""
    values = np.random.default_rng(1).normal(0, 1e18, int(2.5 * d._CHUNK)).astype(np.float32)
    values[[5, d._CHUNK + 7]] = [np.inf, np.nan]
    values[-3:] = [3e19, -2e19, 1e38]
    whole = values.astype(np.float64)
    finite = whole[np.isfinite(whole)]
    measured = d._measure(values, np.sqrt(d.FLOAT32_MAX))
    assert measured["not finite"] == pytest.approx(2 / values.size)
    assert measured["largest |g|"] == pytest.approx(1e38, rel=1e-6)
    assert measured["g² overflows float32"] == pytest.approx(np.mean(np.abs(whole) > np.sqrt(d.FLOAT32_MAX)))
    assert measured["norm"] == pytest.approx(np.linalg.norm(finite), rel=1e-9)
    assert np.isnan(d._measure(np.array([np.nan, np.inf], np.float32), 1.0)["largest |g|"])
