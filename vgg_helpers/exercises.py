"""Self-checks for the exercises at the end of each notebook.

An exercise cell leaves its answer as ``None``; the check cell below it calls::

    vh.exercises.check("00-rarest-digit", rarest_digit, y_train=y_train)

which prints "not answered yet" and returns ``None`` for ``None`` (so *Run All* still reaches
the end of the notebook, and nothing but that line shows under the cell), raises ``AssertionError``
with a hint for a wrong answer, and prints a tick and returns ``True`` for a right one. Each
notebook's hidden solution cell runs the same check on the solution.
"""

from __future__ import annotations

from collections.abc import Callable

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


def check(key: str, answer, **context) -> bool | None:
    """Check ``answer`` to exercise ``key``: ``None`` if unanswered (a notebook cell then displays no value
    under the message), ``AssertionError`` if wrong, ``True`` if right."""
    if key not in _CHECKERS:
        raise ValueError(f"no exercise called {key!r}; known: {', '.join(sorted(_CHECKERS))}.")
    if answer is None or answer is Ellipsis:
        print(f"{key}: not answered yet. Replace the None above with your answer and run both cells.")
        return None
    _CHECKERS[key](answer, **context)
    print(f"{key}: ✓ correct")
    return True


# --- 00_start_here ------------------------------------------------------------------------------


@checker("00-mean-pixel")
def _mean_pixel(answer, x_train):
    expected = float(np.asarray(x_train).mean(dtype=np.float64) / 255.0)  # no 376 MB float copy
    assert 0.0 <= float(answer) <= 1.0, f"{answer} is outside [0, 1]. Hint: the pixels are uint8, 0 to 255; divide by 255."
    assert abs(float(answer) - expected) < 1e-3, (
        f"{float(answer):.4f} is not the mean of the scaled pixels. Hint: x_train.mean() / 255 "
        "(the mean of the scaled pixels, without making a scaled copy of all 47 million)."
    )


@checker("00-test-pipeline")
def _test_pipeline(answer, x_test, y_test, batch_size=500):
    import tensorflow as tf

    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    assert isinstance(answer, tf.data.Dataset), (
        f"answer with a tf.data.Dataset, not {type(answer).__name__}. "
        "Hint: start from tf.data.Dataset.from_tensor_slices((x_test, y_test.astype('int32')))."
    )
    first = next(iter(answer))
    assert isinstance(first, tuple) and len(first) == 2, "Hint: each element should be an (images, labels) pair."
    images, labels = first
    n = min(batch_size, len(x_test))
    assert tuple(images.shape) != (n, 28, 28), "Hint: add the channel axis, images[..., None], as Keras expects."
    assert tuple(images.shape) == (n, 28, 28, 1), (
        f"the first batch has shape {tuple(images.shape)}, not {(n, 28, 28, 1)}. Hint: .batch({batch_size}), "
        "then the channel axis."
    )
    assert images.dtype == tf.float32, f"the images are {images.dtype.name}. Hint: tf.cast(images, tf.float32)."
    high = float(tf.reduce_max(images))
    assert high <= 1.0, f"the pixels go up to {high:g}. Hint: divide by 255 to scale them to [0, 1]."
    assert np.allclose(images.numpy()[..., 0], x_test[:n] / 255.0, atol=1e-6), (
        "these are not the first test images in order, scaled by 1/255. Hint: do not shuffle the test set."
    )
    assert labels.dtype == tf.int32, f"the labels are {labels.dtype.name}. Hint: y_test.astype('int32')."
    assert np.array_equal(labels.numpy(), y_test[:n]), "Hint: keep each label with its image, in order."
    total = sum(int(batch[0].shape[0]) for batch in answer)
    assert total == len(x_test), (
        f"the pipeline yields {total:,} images, the test set has {len(x_test):,}. Hint: batch all of it "
        "and keep the last, smaller batch (no drop_remainder, take or repeat)."
    )
    print(f"{-(-total // batch_size)} batches of up to {batch_size}: {total:,} test images, in order")


# --- 01_vgg_history -----------------------------------------------------------------------------


def _config_table(name: str):
    from vgg_helpers.architectures import layer_table, vgg_config

    return layer_table(vgg_config(name))


def _vgg16_table():
    return _config_table("D")


@checker("01-block3-params")
def _block3_params(answer):
    def block3(name):  # conv5-7 of C and D: the third block, 256 filters, 128 channels in
        return sum(r.params for r in [r for r in _config_table(name) if r.kind == "conv"][4:7])

    expected = block3("C")
    assert isinstance(answer, (int, np.integer)), f"answer with an int, not {answer!r}"
    assert answer != expected - 3 * 256, "close: you left out the biases (one per filter)."
    assert answer != block3("D"), "that is D's block 3. Hint: C's third conv is 1×1: 1·1·C_in·C_out weights."
    assert answer == expected, (
        f"{answer:,} is not it. Hint: a k×k conv from C_in to C_out channels has "
        "k·k·C_in·C_out weights and C_out biases; the block's first conv takes 128 channels in."
    )


@checker("01-gap-params")
def _gap_params(answer):
    table = _vgg16_table()
    fc1 = next(r for r in table if r.name == "fc1")
    expected = table.total("params") - fc1.params + (512 * 4096 + 4096)
    assert isinstance(answer, (int, np.integer)), f"answer with an int, not {answer!r}"
    assert answer == expected, (
        f"{answer:,} is not it. Hint: global average pooling turns the 7×7×512 map into 512 "
        "numbers, so FC1 becomes a 512 → 4096 layer (weights and biases); the rest is unchanged."
    )


@checker("01-receptive-field")
def _receptive_field(answer):
    from vgg_helpers.architectures import receptive_field

    assert answer == receptive_field(5), (
        f"{answer} is not it. Hint: each stride-1 3×3 conv widens the receptive field by 2 pixels."
    )


# --- 02_conv_levels -----------------------------------------------------------------------------


@checker("02-pool8-macs")
def _pool8_macs(answer):
    from vgg_helpers.architectures import blog_vgg, layer_table

    expected = layer_table(blog_vgg(pools=(2, 4, 8))).total("macs")
    assert isinstance(answer, (int, np.integer)), f"answer with an int, not {answer!r}"
    assert answer == expected, (
        f"{answer:,} is not it. Hint: vh.architectures.layer_table(vh.architectures.blog_vgg(pools=...)) "
        "gives the table of any pooling choice; .total('macs') adds it up."
    )


def measured_receptive_field(model, size: int = 15) -> int:
    """Receptive field of a conv stack, measured: ones for kernels, no biases, one bright pixel."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    probe = keras.Sequential(
        [keras.Input((size, size, 1))]
        + [
            keras.layers.Conv2D(1, layer.kernel_size, padding="same", use_bias=False, kernel_initializer="ones")
            for layer in convs
        ]
    )
    impulse = np.zeros((1, size, size, 1), dtype="float32")
    impulse[0, size // 2, size // 2, 0] = 1.0
    response = np.asarray(probe(impulse))[0, :, size // 2, 0]
    rows = np.flatnonzero(response)
    return int(rows.max() - rows.min() + 1)


@checker("02-two-conv-level")
def _two_conv_level(answer):
    import keras

    assert isinstance(answer, keras.Model), f"answer with a Keras model, not {type(answer).__name__}"
    convs = [layer for layer in answer.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 2, f"the level should have two Conv2D layers, it has {len(convs)}. Hint: keras.Sequential([...])."
    assert all(tuple(c.kernel_size) == (3, 3) for c in convs), "Hint: both convolutions should be 3×3."
    field = measured_receptive_field(answer)
    assert field == 5, f"its receptive field measures {field}×{field}, not 5×5. Hint: use padding='same' and stride 1."
    print(f"two 3×3 convs: receptive field measured {field}×{field}")


@checker("02-lrn-cap")
def _lrn_cap(answer):
    from vgg_helpers.architectures import BLOG_LRN

    alpha, beta = BLOG_LRN["alpha"], BLOG_LRN["beta"]
    peak_input = 1 / np.sqrt(alpha * (2 * beta - 1))  # where d/da [a / (1 + alpha a²)^beta] = 0
    expected = peak_input / (1 + alpha * peak_input**2) ** beta
    equal = 1 / np.sqrt(9 * alpha * (2 * beta - 1))
    assert abs(float(answer) - equal / (1 + 9 * alpha * equal**2) ** beta) > 0.1, (
        "close: that is the cap with nine equal channels, from section 3. Hint: set only the middle channel, "
        "leave the other eight at zero."
    )
    assert abs(float(answer) - expected) < 0.05, (
        f"{float(answer):.4g} is not it. Hint: feed inputs from 1 to 1000 in small steps into the middle of 9 channels "
        "(the others zero) and take the largest output; or maximise a / (1 + α a²)^β by hand."
    )


# --- 03_exploding_loss --------------------------------------------------------------------------


@checker("03-he-stddev")
def _he_stddev(answer):
    expected = float(np.sqrt(2.0 / (3 * 3 * 256)))
    assert abs(float(answer) - float(np.sqrt(1.0 / (3 * 3 * 256)))) > 1e-4, (
        "close: that keeps the variance of a linear layer. Hint: a ReLU zeroes half its inputs, "
        "so E[x²] is half of Var[y]: you need twice the variance."
    )
    assert abs(float(answer) - expected) < 1e-4, (
        f"{answer} is not it. Hint: Var[y] = n_in · Var[w] · E[x²] with n_in = 3·3·256 inputs per "
        "output, and after a ReLU E[x²] = Var[y]/2; solve for the std of w."
    )


@checker("03-logit-scale")
def _logit_scale(answer, measured):
    ratio = float(answer) / float(measured)
    assert 0.5 < ratio < 2, (
        f"{float(answer):.3g} is {ratio:.2g}× the measured logit std {float(measured):.3g}. Hint: apply "
        "std(y) = √(n_in · Var[w] · E[x²]) three times, with n_in = 4096, Var[w] = 1, E[x²] ≈ 100 after "
        "the conv stack, and E[x²] = std²/2 after each ReLU."
    )


@checker("03-fixed-level")
def _fixed_level(answer):
    import keras

    assert isinstance(answer, keras.Model), f"answer with a keras.Model, not {type(answer).__name__}"
    layers = [layer for layer in answer.layers if not isinstance(layer, keras.layers.InputLayer)]
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Conv2D", "BatchNormalization", "ReLU"], (
        f"the layers are {kinds}. Hint: Conv2D, then BatchNormalization, then ReLU (a layer, not the conv's activation)."
    )
    conv = layers[0]
    assert conv.filters == 16 and tuple(conv.kernel_size) == (3, 3) and conv.padding == "same", (
        "Hint: 16 filters of 3×3 with padding='same'."
    )
    assert not conv.use_bias, "Hint: the conv needs no bias: BatchNorm subtracts the mean right after it (use_bias=False)."
    assert conv.activation.__name__ == "linear", "Hint: no activation on the conv itself; the ReLU comes after BatchNorm."
    init = conv.kernel_initializer.get_config()
    assert type(conv.kernel_initializer).__name__ == "HeNormal" or (
        init.get("scale") == 2.0
        and init.get("mode") == "fan_in"
        and init.get("distribution") in ("truncated_normal", "untruncated_normal")
    ), "Hint: kernel_initializer='he_normal'."
    assert tuple(answer.input_shape[1:]) == (28, 28, 8), f"the input should be 28×28×8, got {answer.input_shape[1:]}."
    out = keras.ops.convert_to_numpy(answer(np.random.default_rng(0).random((16, 28, 28, 8), dtype=np.float32), training=True))
    assert out.shape == (16, 28, 28, 16) and out.min() >= 0


# --- 04_training_mnist --------------------------------------------------------------------------


@checker("04-stop-at")
def _stop_at(answer):
    import keras

    assert isinstance(answer, type) and issubclass(answer, keras.callbacks.Callback), (
        f"answer with a class (a subclass of keras.callbacks.Callback), not {answer!r}"
    )
    for threshold, logs, expected in [(0.995, {"val_accuracy": 0.99}, False), (0.995, {"val_accuracy": 0.996}, True),
                                      (0.9, {"val_accuracy": 0.9}, True), (0.9, {"loss": 0.1}, False)]:  # fmt: skip
        callback = answer(threshold)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.stop_training = False
        callback.set_model(model)
        callback.on_epoch_end(0, logs)
        assert bool(model.stop_training) == expected, (
            f"StopAt({threshold}) after an epoch with logs {logs} set stop_training to {bool(model.stop_training)}. "
            "Hint: in on_epoch_end, compare logs.get('val_accuracy') with the threshold (reaching it counts), "
            "and set self.model.stop_training = True."
        )


@checker("04-top2-accuracy")
def _top2_accuracy(answer, probabilities, labels):
    probabilities, labels = np.asarray(probabilities), np.asarray(labels, dtype=int)
    top2 = np.argsort(probabilities, axis=1)[:, -2:]
    expected = float(np.mean((top2 == labels[:, None]).any(axis=1)))
    top1 = float(np.mean(probabilities.argmax(axis=1) == labels))
    assert abs(float(answer) - top1) > 1e-9 or top1 == expected, (
        "that is the top-1 accuracy. Hint: count an image as right when its label is among the two "
        "highest probabilities (np.argsort(probabilities, axis=1)[:, -2:])."
    )
    assert abs(float(answer) - expected) < 1e-6, (
        f"{answer} is not it. Hint: a fraction between 0 and 1 — the share of images whose label is among "
        "their two most probable digits."
    )


@checker("04-one-cycle")
def _one_cycle(answer):
    from vgg_helpers.training import warmup_cosine

    assert callable(answer), f"answer with a function my_one_cycle(step, peak, total_steps, warmup_steps), not {answer!r}"
    for peak, total, warmup in [(0.02, 860, 430), (0.01, 200, 50)]:
        schedule = warmup_cosine(peak, total, warmup)
        for step in sorted({0, 1, warmup // 2, warmup, warmup + 1, (warmup + total) // 2, total - 1, total}):
            expected, got = float(schedule(step)), float(answer(step, peak, total, warmup))
            assert abs(got - expected) <= 1e-6 + 1e-4 * expected, (
                f"at step {step} of {total} (warm-up {warmup}, peak {peak}) Keras' schedule gives {expected:.6g}, yours "
                f"{got:.6g}. Hint: during the warm-up, peak/10 + (peak - peak/10) · step/warmup; after it, "
                "peak · (0.01 + 0.99 · (1 + cos(π · progress)) / 2) with progress = (step - warmup)/(total - warmup)."
            )


# --- 05_original_tf1_code -----------------------------------------------------------------------


def _in_new_graph(build):
    """Call ``build()`` in a fresh TF1 graph (in eager or graph mode alike); return ``(graph, its result)``."""
    import tensorflow.compat.v1 as tf1

    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)  # the same numbers in every check
        return graph, build()


@checker("05-placeholder-feed")
def _placeholder_feed(answer, digits):
    import tensorflow.compat.v1 as tf1

    assert callable(answer), f"Hint: answer with a function that builds the graph, not a {type(answer).__name__}."
    graph, built = _in_new_graph(answer)
    assert isinstance(built, tuple) and len(built) == 2, "Hint: the function should return the pair (images, ink)."
    images, ink = built
    assert isinstance(images, tf1.Tensor) and images.op.type == "Placeholder", (
        "Hint: images should be a tf.placeholder, the graph's input that feed_dict fills at run time."
    )
    assert images.dtype == tf1.float32, f"the placeholder holds {images.dtype.name}. Hint: tf.float32, as the pixels."
    assert images.shape.as_list() == [None, 784], (
        f"the placeholder's shape is {images.shape.as_list()}. Hint: [None, 784]: None lets any number of "
        "flattened digits through."
    )
    digits = np.asarray(digits, dtype=np.float32)
    with tf1.Session(graph=graph) as sess:
        for n in (len(digits) - 2, len(digits)):
            got = np.asarray(sess.run(ink, feed_dict={images: digits[:n]}))
            assert got.shape == (n,), (
                f"fed {n} digits, ink has shape {got.shape}. Hint: one number per image: tf.reduce_mean(images, axis=1)."
            )
            assert np.allclose(got, digits[:n].mean(axis=1), atol=1e-6), (
                "ink is not each image's mean pixel. Hint: tf.reduce_mean, not tf.reduce_sum, over axis 1."
            )
    print(f"fed {len(digits) - 2} and then {len(digits)} digits through one placeholder; mean ink of the first: {got[0]:.4f}")


@checker("05-he-variable")
def _he_variable(answer):
    import tensorflow.compat.v1 as tf1

    assert callable(answer), f"Hint: answer with a function of (c_in, c_out), not a {type(answer).__name__}."
    import tensorflow as tf  # tf.Variable: the base class of TF1 and TF2 variables alike

    for c_in, c_out in [(64, 64), (512, 256)]:  # the blog's levels 2 and 16 (c_out = 2·c_in would hide a mistake)
        graph, variable = _in_new_graph(lambda c_in=c_in, c_out=c_out: answer(c_in, c_out))
        assert isinstance(variable, tf.Variable), (
            f"he_conv_weights({c_in}, {c_out}) returned {type(variable).__name__}. "
            "Hint: tf.Variable(tf.random_normal(shape, stddev=...))."
        )
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            value = np.asarray(sess.run(variable))
        assert c_in == c_out or value.shape != (3, 3, c_out, c_in), (
            "Hint: a conv kernel's shape is [height, width, in channels, out channels]."
        )
        assert value.shape == (3, 3, c_in, c_out), (
            f"he_conv_weights({c_in}, {c_out}) has shape {value.shape}. Hint: [3, 3, c_in, c_out]."
        )
        std, he = float(value.std()), float(np.sqrt(2.0 / (9 * c_in)))
        assert abs(std - 1.0) > 0.05, "that is the blog's standard deviation 1. Hint: He's is sqrt(2 / fan_in)."
        assert abs(std - np.sqrt(1.0 / (9 * c_in))) > 0.01 * he, (
            "close: that keeps the variance of a linear layer. Hint: after a ReLU only half the signal's power "
            "is left, so He doubles the variance: sqrt(2 / fan_in)."
        )
        assert c_in == c_out or abs(std - np.sqrt(2.0 / (9 * c_out))) > 0.01 * he, (
            "Hint: the fan-in counts the inputs of one output: 3·3·c_in, not the filters."
        )
        assert abs(std - he) < 0.03 * he and abs(float(value.mean())) < 0.1 * he, (
            f"the weights have standard deviation {std:.4g}, He's is {he:.4g}. Hint: mean 0, stddev sqrt(2 / (3·3·c_in))."
        )
        print(f"{c_in} → {c_out} channels: shape {value.shape}, standard deviation {std:.4f} (He: {he:.4f})")


# --- 06_vgg_vs_alexnet --------------------------------------------------------------------------


@checker("06-batchnorm-convnet")
def _batchnorm_convnet(answer):
    import keras

    assert isinstance(answer, keras.Model), (
        f"answer with a Keras model, not {type(answer).__name__}. Hint: keras.Sequential([...])."
    )
    layers = [layer for layer in answer.layers if not isinstance(layer, keras.layers.InputLayer)]
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 2, (
        f"Keras' example has two Conv2D layers, yours has {len(convs)}. Hint: start from the layers of "
        "vh.models.simple_convnet() (print its summary) and change only what follows each Conv2D."
    )
    for i in convs:
        conv, after = layers[i], layers[i + 1 : i + 3]
        kinds = [type(layer).__name__ for layer in after] or ["nothing"]
        assert after and isinstance(after[0], keras.layers.BatchNormalization), (
            f"{conv.name} is followed by {kinds[0]}, not BatchNormalization. Hint: Conv2D(..., use_bias=False), "
            "then keras.layers.BatchNormalization(), then keras.layers.ReLU()."
        )
        assert not conv.use_bias, (
            f"{conv.name} still has a bias. Hint: BatchNorm subtracts the mean of each channel right after the "
            "convolution, so a bias would do nothing: Conv2D(..., use_bias=False)."
        )
        assert conv.activation is keras.activations.linear, (
            f"{conv.name} applies {conv.activation.__name__} before BatchNorm. Hint: normalise the convolution's "
            "output, then apply the ReLU: Conv2D without activation, BatchNormalization, then keras.layers.ReLU()."
        )
        relu = len(after) > 1 and (
            isinstance(after[1], keras.layers.ReLU)
            or (isinstance(after[1], keras.layers.Activation) and after[1].activation is keras.activations.relu)
        )
        assert relu, f"the BatchNorm after {conv.name} is followed by {kinds[-1]}, not a ReLU. Hint: keras.layers.ReLU()."
    try:
        logits = keras.ops.convert_to_numpy(answer(np.zeros((2, 28, 28, 1), "float32"), training=False))
    except Exception as err:  # noqa: BLE001 - any failure of the forward pass is the learner's to see
        raise AssertionError(
            f"a batch of two 28×28×1 images does not go through: {err}. Hint: keras.Input((28, 28, 1)) first."
        ) from err
    assert logits.shape == (2, 10), f"the model outputs shape {logits.shape}, not (2, 10). Hint: end with keras.layers.Dense(10)."
    print(f"{answer.count_params():,} parameters; conv → BatchNorm → ReLU at both levels")


def final_accuracies(curves) -> list[float]:
    """The last test accuracy of each run of one cell (a list of ``TrainingCurve``)."""
    return [float(curve.accuracies[-1]) for curve in curves]


@checker("06-cell-spread")
def _cell_spread(answer, results):
    assert callable(answer), (
        f"answer with a function, not {type(answer).__name__}. Hint: def final_spread(curves): ... return mean, lowest, highest"
    )
    for label, curves in results.items():
        finals = final_accuracies(curves)
        expected = (float(np.mean(finals)), min(finals), max(finals))
        got = answer(curves)
        assert isinstance(got, (tuple, list)) and len(got) == 3, (
            f"final_spread(results[{label!r}]) returned {got!r}. Hint: return three numbers: mean, lowest, highest."
        )
        got = tuple(float(v) for v in got)
        if np.allclose(got, expected, atol=1e-9):
            continue
        bests = [max(curve.accuracies) for curve in curves]
        assert not np.allclose(got, (np.mean(bests), min(bests), max(bests)), atol=1e-9), (
            "close: that is the best accuracy of each run. Hint: take the last one, curve.accuracies[-1]: the "
            "accuracy after the examples every network saw."
        )
        assert not np.allclose(got, [100 * v for v in expected], atol=1e-6), (
            "close: in percent. Hint: keep fractions (0.95, not 95)."
        )
        raise AssertionError(
            f"for {label!r} you give {got}, not the mean, lowest and highest of its final accuracies. "
            "Hint: finals = [c.accuracies[-1] for c in curves]; then np.mean(finals), min(finals), max(finals)."
        )


# --- 07_data_parallel ---------------------------------------------------------------------------


@checker("07-global-batch")
def _global_batch(answer, replicas, per_replica_batch, base_rate, base_batch):
    assert isinstance(answer, tuple) and len(answer) == 2, f"answer with a (global batch, learning rate) tuple, not {answer!r}"
    global_batch, rate = int(answer[0]), float(answer[1])
    expected_batch = int(replicas) * int(per_replica_batch)
    assert global_batch == expected_batch, (
        f"{global_batch} is not the global batch. Hint: each of the {replicas} replicas takes {per_replica_batch} images "
        "per step, and one update averages over all of them."
    )
    expected_rate = float(base_rate) * expected_batch / int(base_batch)
    assert abs(rate - expected_rate) <= 1e-9 * expected_rate, (
        f"a learning rate of {rate:g} is not it. Hint: the linear scaling rule multiplies the rate by the global batch "
        f"over the batch the rate was tuned for: {base_rate:g} × global batch / {base_batch}."
    )


@checker("07-replica-loss")
def _replica_loss(answer, global_batch_size):
    import keras

    assert callable(answer), "answer with a function replica_loss(labels, logits, global_batch_size) returning a number"
    local = int(global_batch_size) // 2  # one of two replicas
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, local).astype("int32")
    logits = rng.normal(size=(local, 10)).astype("float32")
    per_example = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    expected = float(per_example.sum()) / int(global_batch_size)
    got = float(keras.ops.convert_to_numpy(answer(labels, logits, global_batch_size)))
    assert abs(got - 2 * expected) > 1e-5 * expected, (
        "close: that is the mean over this replica's own examples. Summed over two replicas by the all-reduce, it "
        "doubles the gradient. Hint: divide the sum of the per-example losses by the global batch."
    )
    assert abs(got - expected) <= 1e-5 * expected, (
        f"{got:.6g} is not it (expected {expected:.6g} for {local} examples of a global batch of {global_batch_size}). "
        "Hint: keras.ops.sum(per_example_loss) / global_batch_size, with per_example_loss from "
        "keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)."
    )


@checker("07-overlap-speedup")
def _overlap_speedup(answer):
    assert callable(answer), "answer with a function speedup(t_compute, gradient_bytes, devices, bytes_per_second)"
    for t_compute, gradient_bytes, devices, bandwidth in [
        (0.05, 210e6, 8, 12.5e9),
        (0.05, 210e6, 8, 1.25e9),
        (0.5, 75e6, 1, 1.25e9),
    ]:
        t_comm = 2 * (devices - 1) / devices * gradient_bytes / bandwidth
        expected = devices * t_compute / max(t_compute, t_comm)
        got = float(answer(t_compute, gradient_bytes, devices, bandwidth))
        if abs(got - expected) <= 1e-9 * expected:
            continue
        assert abs(got - devices * t_compute / (t_compute + t_comm)) > 1e-9 * expected, (
            "close: that is the model without overlap, where the step waits for the all-reduce. Hint: with full overlap "
            "the step lasts as long as the longer of the two, max(t_compute, t_comm)."
        )
        raise AssertionError(
            f"speedup({t_compute}, {gradient_bytes:g}, {devices}, {bandwidth:g}) = {got:.4g}, expected {expected:.4g}. Hint: "
            "t_comm = 2 · (devices − 1) / devices · gradient_bytes / bytes_per_second, and the speed-up is "
            "devices · t_compute / max(t_compute, t_comm)."
        )


# --- 08_where_depth_pays ------------------------------------------------------------------------


def _row_rule(config) -> tuple[int, ...]:
    """The checker's own rule: 3×3 convs counted between pools (a 1×1 conv has no row)."""
    row, convs = [], 0
    for layer in config.layers:
        if layer.kind == "conv":
            if layer.kernel != 3:
                raise ValueError(f"{config.name} has a {layer.kernel}×{layer.kernel} conv")
            convs += 1
        elif layer.kind == "pool":
            row.append(convs)
            convs = 0
    return tuple(row)


@checker("08-row-rule")
def _convs_per_block(answer, table):
    from vgg_helpers.architectures import Architecture, _paper_layers, vgg_config

    assert callable(answer), "answer with a function: def convs_per_block(config): ... returning a tuple of ints."
    made_up = Architecture("made-up", _paper_layers(([64] * 3, [128], [256] * 5, [512], [512, 512]), False), (224, 224, 3))
    for config in [vgg_config(name) for name in ("A", "A-LRN", "B", "D", "E")] + [made_up]:
        expected = _row_rule(config)
        got = answer(config)
        assert isinstance(got, tuple), (
            f"for {config.name} your function returned a {type(got).__name__}. Hint: the table's rows are tuples: "
            "return tuple(row)."
        )
        assert all(isinstance(n, (int, np.integer)) for n in got), "Hint: the row holds numbers of convs, ints."
        if got != expected:
            hint = "Hint: count the layers whose kind is 'conv', and start a new block after each 'pool'."
            if len(got) != 5:
                hint = f"your row has {len(got)} blocks, the configuration 5 (one per pool). " + hint
            elif sum(got) > sum(expected):
                hint = "you count more layers than its 3×3 convs (LRN, dense or dropout?). " + hint
            raise AssertionError(f"{config.name}: {got}, but it has {expected} convs per block. {hint}")
    try:
        got = answer(vgg_config("C"))
    except ValueError:
        pass
    else:
        raise AssertionError(
            f"C has three 1×1 convs, but your function returned {got} for it. Hint: a conv whose kernel is not 3 "
            "has no place in a row of 3×3 convs: raise ValueError."
        )
    assert answer(vgg_config("E")) == tuple(table["E"]), "E's row should be the table's E."


@checker("08-most-confused")
def _most_confused(answer, labels, predictions):
    from vgg_helpers.data import FASHION_CLASSES
    from vgg_helpers.plots import confusion_matrix

    confusion = confusion_matrix(labels, predictions)
    both_ways = confusion + confusion.T
    np.fill_diagonal(both_ways, 0)
    i, j = np.unravel_index(both_ways.argmax(), both_ways.shape)
    expected = {FASHION_CLASSES[i], FASHION_CLASSES[j]}
    if isinstance(answer, str) or not hasattr(answer, "__len__"):
        raise AssertionError(
            f"answer with two class names, e.g. {{'{FASHION_CLASSES[0]}', '{FASHION_CLASSES[6]}'}}, not {answer!r}."
        )
    names = set(answer)
    assert not all(isinstance(n, (int, np.integer)) for n in names), (
        "those are labels. Hint: vh.data.FASHION_CLASSES[label] gives a class's name."
    )
    assert len(names) == 2 and names <= set(FASHION_CLASSES), (
        f"answer with two different names from vh.data.FASHION_CLASSES, got {answer!r}."
    )
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    a, b = np.unravel_index(off.argmax(), off.shape)
    if names != expected and names == {FASHION_CLASSES[a], FASHION_CLASSES[b]}:
        raise AssertionError(
            "close: that is the largest mix-up in one direction. Hint: add each pair's mix-ups in both directions, "
            "confusion + confusion.T, before looking for the largest."
        )
    assert names == expected, "not that pair. Hint: the largest entry of confusion + confusion.T off its diagonal."
    print(f"{' and '.join(sorted(expected))}: {both_ways[i, j]} test images mixed up, in both directions")
