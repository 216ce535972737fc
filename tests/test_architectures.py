"""Architecture tables (shapes, parameters, MACs, memory), the Keras builder and the LRN layer."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_helpers.architectures import (
    BLOG_LRN,
    PAPER_PARAMS_MILLIONS,
    VGG_CONFIG_NAMES,
    Architecture,
    Layer,
    blog_vgg,
    conv,
    dense,
    layer_table,
    pool,
    receptive_field,
    trace_shapes,
    vgg_config,
)
from vgg_helpers.models import LocalResponseNormalization, build_model, get_initializer

# --- the paper's configurations -----------------------------------------------------------------


@pytest.mark.parametrize("name", VGG_CONFIG_NAMES)
def test_paper_parameter_counts_round_to_table_2(name):
    params = layer_table(vgg_config(name)).total("params")
    assert round(params / 1e6) == PAPER_PARAMS_MILLIONS[name]


def test_depths_of_configurations():
    depths = {name: vgg_config(name).weight_layers for name in VGG_CONFIG_NAMES}
    assert depths == {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}


def test_vgg16_by_hand():
    table = layer_table(vgg_config("D"))
    assert table.total("params") == 138_357_544
    fc1 = next(r for r in table if r.name == "fc1")
    assert fc1.params == 7 * 7 * 512 * 4096 + 4096 == 102_764_544
    assert table[0].params == 3 * 3 * 3 * 64 + 64
    assert table[0].macs == 224 * 224 * 3 * 3 * 3 * 64
    assert table[0].output_shape == (224, 224, 64)
    assert table[0].activation_bytes == 224 * 224 * 64 * 4
    assert 15.3e9 < table.total("macs", ["conv"]) < 15.6e9
    assert [r.output_shape for r in table if r.kind == "pool"][-1] == (7, 7, 512)


@pytest.mark.slow
@pytest.mark.parametrize("name, factory", [("D", keras.applications.VGG16), ("E", keras.applications.VGG19)])
def test_matches_keras_applications(name, factory):
    assert layer_table(vgg_config(name)).total("params") == factory(weights=None).count_params()


def test_unknown_configuration():
    with pytest.raises(ValueError, match="no VGG configuration 'F'"):
        vgg_config("F")


# --- the blog's MNIST network -------------------------------------------------------------------


def test_blog_network_counts():
    table = layer_table(blog_vgg())
    assert table.total("params") == 52_446_922
    assert table.total("params", ["conv"]) == 18_843_328
    assert table.total("params", ["dense"]) == 33_603_594
    assert table.total("macs") == 744_195_072
    assert [r.output_shape[:2] for r in table if r.kind == "pool"] == [(14, 14), (7, 7), (4, 4)]
    fc1 = next(r for r in table if r.name == "fc1")
    assert fc1.params == 4 * 4 * 256 * 4096 + 4096


def test_width_multiplier_scales_every_hidden_layer_but_not_the_classes():
    table = layer_table(blog_vgg(), width=0.5)
    convs = [r.output_shape[-1] for r in table if r.kind == "conv"]
    assert convs == [32, 32, 64, 64] + [128] * 4 + [256] * 7 + [128]
    assert [r.output_shape for r in table if r.kind == "dense"] == [(2048,), (2048,), (10,)]
    assert layer_table(blog_vgg(), width=1e-6).total("params") > 0  # every layer keeps >= 1 unit


def test_five_pools_same_and_valid():
    same = trace_shapes(blog_vgg(pools=(2, 4, 8, 12, 16)), (28, 28, 1))
    assert [r.output_shape[:2] for r in same if r.kind == "pool"] == [(14, 14), (7, 7), (4, 4), (2, 2), (1, 1)]
    assert next(r for r in same if r.name == "fc1").params == 256 * 4096 + 4096
    with pytest.raises(ValueError, match=r"pool 5 \(after conv 16\) shrinks the 1×1 map to 0×0 with VALID"):
        layer_table(blog_vgg(pools=(2, 4, 8, 12, 16), pool_padding="valid"))


def test_valid_pooling_rounds_down():
    table = layer_table(blog_vgg(pool_padding="valid"))
    assert [r.output_shape[:2] for r in table if r.kind == "pool"] == [(14, 14), (7, 7), (3, 3)]


@pytest.mark.parametrize("width", [0, -1, float("nan"), "wide"])
def test_bad_width(width):
    with pytest.raises(ValueError, match="width must be a positive number"):
        layer_table(blog_vgg(), width=width)


def test_bad_layers():
    good = blog_vgg()
    with pytest.raises(ValueError, match="unknown layer kind 'attention'"):
        layer_table(dataclasses.replace(good, layers=good.layers + (Layer("attention"),)))
    with pytest.raises(ValueError, match="conv layer 1 needs a positive number of units, got 0"):
        layer_table(Architecture("x", (conv(0),), (28, 28, 1)))
    with pytest.raises(ValueError, match="cannot follow a dense"):
        layer_table(Architecture("x", (dense(10), conv(8)), (28, 28, 1)))
    with pytest.raises(ValueError, match="input shape must be positive"):
        layer_table(Architecture("x", (conv(8),), (0, 28, 1)))
    with pytest.raises(ValueError, match="pool_padding"):
        layer_table(Architecture("x", (pool(),), (28, 28, 1), pool_padding="full"))
    with pytest.raises(ValueError, match="cannot pool after conv 17"):
        blog_vgg(pools=(2, 17))


def test_table_renders_text_and_html():
    table = layer_table(blog_vgg())
    text = str(table)
    assert "conv1 3×3" in text and "52,446,922" in text and "4×4×256" in text
    assert "<table" in table._repr_html_() and "52,446,922" in table._repr_html_()


def test_receptive_field():
    assert [receptive_field(n) for n in (1, 2, 3)] == [3, 5, 7]
    assert receptive_field(1, kernel=7) == 7
    with pytest.raises(ValueError):
        receptive_field(-1)


# --- the Keras builder ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arch, width",
    [
        (blog_vgg(), 1 / 16),
        (blog_vgg(lrn=False, batchnorm=True), 1 / 8),
        (blog_vgg(dense_units=(64,), dropout_rate=0.0), 0.25),
        (blog_vgg(pools=(2, 4, 8, 12, 16)), 1 / 16),
        (vgg_config("C", input_shape=(32, 32, 3)), 1 / 8),
    ],
)
def test_builder_matches_table(arch, width):
    model = build_model(arch, width=width)
    assert model.count_params() == layer_table(arch, width).total("params")
    assert model.output_shape == (None, layer_table(arch, width)[-1].output_shape[0])


def test_builder_full_width_blog_count():
    assert build_model(blog_vgg(), initializer="blog").count_params() == 52_446_922


def test_builder_rejects_bad_input_before_building():
    with pytest.raises(ValueError, match="width must be a positive"):
        build_model(blog_vgg(), width=0)
    with pytest.raises(ValueError, match="shrinks"):
        build_model(blog_vgg(pools=(1, 2, 3, 4, 5, 6), pool_padding="valid"))
    with pytest.raises(ValueError, match="unknown initializer 'gaussian'"):
        build_model(blog_vgg(), width=1 / 16, initializer="gaussian")


@pytest.mark.parametrize("name, std", [("blog", 1.0), ("tf_examples", 1.0), ("vgg_paper", 0.1), ("alexnet", 0.01)])
def test_named_initializers(name, std):
    keras.utils.set_random_seed(0)  # else the draw depends on which tests this process ran before (a 4σ bound below)
    values = keras.ops.convert_to_numpy(get_initializer(name)((200, 200)))
    assert abs(values.std() - std) / std < 0.02 and abs(values.mean()) < 0.02 * std


def test_batchnorm_options():
    model = build_model(blog_vgg(lrn=False, batchnorm=True), width=1 / 16, bn_momentum=0.9)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 18 and all(bn.momentum == 0.9 for bn in bns)
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)
    assert all(not layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))


# --- the LRN layer --------------------------------------------------------------------------------


def test_lrn_matches_tensorflow():
    x = tf.random.normal((2, 5, 5, 16), stddev=30.0, seed=1)
    expected = tf.nn.local_response_normalization(x, **BLOG_LRN)
    np.testing.assert_allclose(LocalResponseNormalization()(x), expected, rtol=1e-6)
    other = {"depth_radius": 2, "bias": 2.0, "alpha": 1e-3, "beta": 0.5}
    np.testing.assert_allclose(LocalResponseNormalization(**other)(x), tf.nn.local_response_normalization(x, **other), rtol=1e-6)


def test_lrn_model_saves_and_loads_in_safe_mode(tmp_path):
    model = build_model(blog_vgg(), width=1 / 16)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    path = tmp_path / "blog.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True, the default
    lrn = [layer for layer in loaded.layers if isinstance(layer, LocalResponseNormalization)]
    assert len(lrn) == 16 and lrn[0].alpha == pytest.approx(0.001 / 9)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_blog_alexnet_at_28x28():
    from vgg_helpers.architectures import blog_alexnet

    arch = blog_alexnet()
    table = layer_table(arch)
    convs = [r for r in table if r.kind == "conv"]
    assert [r.output_shape for r in convs] == [(28, 28, 64), (14, 14, 128), (7, 7, 256)]
    pools = [r.output_shape for r in table if r.kind == "pool"]
    assert pools == [(14, 14, 64), (7, 7, 128), (4, 4, 256)]  # 'same' pooling: 7 → 4
    # conv 640 + 73,856 + 295,168; dense 4096·1024 + 1024, 1024² + 1024, 1024·10 + 10
    assert table.total("params") == 5_624_842
    assert build_model(arch, initializer="tf_examples").count_params() == 5_624_842
    assert [r.name for r in table if r.kind == "dropout"] == ["dropout 0.2"] * 3  # alexnet.py keeps 0.8 after each conv level
    fixed = build_model(blog_alexnet(lrn=False, batchnorm=True), width=1 / 8)
    assert fixed.count_params() == layer_table(blog_alexnet(lrn=False, batchnorm=True), 1 / 8).total("params")
    assert not any("lrn" in layer.name for layer in fixed.layers)


@pytest.mark.parametrize("name, bias_std", [("tf_examples", 1.0), ("blog", 0.0), ("he_normal", 0.0), ("vgg_paper", 0.0)])
def test_only_tf_examples_draws_its_biases_at_random(name, bias_std):
    model = build_model(blog_vgg(lrn=False), width=1 / 8, initializer=name)
    biases = np.concatenate(
        [keras.ops.convert_to_numpy(layer.bias) for layer in model.layers if getattr(layer, "use_bias", False)]
    )
    assert abs(biases.std() - bias_std) < 0.1


def test_the_blog_init_has_the_posts_zero_biases_and_unit_weights():
    """The post: weights tf.random_normal (σ = 1), every bias tf.zeros (docs/blog-post.md)."""
    model = build_model(blog_vgg(), width=1 / 8, initializer="blog")
    layers = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(layers) == 19 and all(layer.use_bias for layer in layers)
    assert all(not np.any(keras.ops.convert_to_numpy(layer.bias)) for layer in layers)
    kernels = np.concatenate([keras.ops.convert_to_numpy(layer.kernel).ravel() for layer in layers])
    assert abs(kernels.std() - 1.0) < 0.01


def test_architectures_is_pure_arithmetic():
    """The tables need neither TensorFlow nor Keras: importing them in a fresh process loads neither."""
    import subprocess
    import sys

    # vgg_helpers/__init__ imports TensorFlow on purpose; load the module file on its own instead.
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('a', sys.argv[1]); "
        "a = importlib.util.module_from_spec(spec); sys.modules['a'] = a; spec.loader.exec_module(a); "
        "a.layer_table(a.blog_vgg()); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    import vgg_helpers.architectures as module

    result = subprocess.run([sys.executable, "-c", code, module.__file__], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_tables_and_models_see_the_same_levels():
    from vgg_helpers.architectures import trace_levels
    from vgg_helpers.models import levels

    for arch in (blog_vgg(), blog_vgg(lrn=False, batchnorm=True)):
        model = build_model(arch, width=1 / 16)
        table = trace_levels(arch, width=1 / 16)
        found = levels(model)
        assert len(found) == len(table) == 19
        assert [level.output.output.shape[1:] for level in found] == [row.output_shape for row in table]
        assert [sum(layer.count_params() for layer in level.layers) for level in found] == [row.params for row in table]


def test_table_renders_as_a_dataframe():
    table = layer_table(blog_vgg())
    frame = table.to_frame()
    assert list(frame.columns) == ["layer", "output shape", "parameters", "MACs", "activations (KiB)"]
    assert frame["parameters"].sum() == 52_446_922
    assert "52,446,922" in str(table) and "52,446,922" in table._repr_html_() and "<table" in table._repr_html_()
