"""The maintainers' benchmark (``python -m benchmarks``): its recipe, its tables and output, and a quick run end
to end (correctness, not speed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_model, tiny_splits

from benchmarks import __main__ as cli
from benchmarks import notebooks, recipe, speed, sweep
from vgg_helpers import training
from vgg_helpers.architectures import BLOG_WIDTHS, blog_vgg
from vgg_helpers.data import make_dataset, training_dataset
from vgg_helpers.models import build_model, simple_convnet
from vgg_helpers.runtime import BUDGETS
from vgg_helpers.training import TrainingCurve, compile_classifier

ROOT = Path(__file__).resolve().parents[1]


def result(config, seconds, accuracies, seed=0, target=0.99):
    """A made-up run: ``accuracies`` at even intervals over ``seconds`` of training, 128 images per interval."""
    curve = TrainingCurve("x", accuracies, [seconds / len(accuracies)] * len(accuracies), 1, 128, 10_000)
    return sweep.Result(config, seed, 830_546, 12_345_678, curve, 1_234.0, target)


def test_table_and_ratio():
    a = result("c1", 60.0, [0.98, 0.991])
    b = result("c2", 100.0, [0.97, 0.985, 0.992])
    table = sweep.format_table([a, b])
    assert "s to 99.0%" in table and "99.10%" in table and "99.20%" in table and "c2 s0" in table
    assert sweep.time_ratio(a, b) == pytest.approx(60 / 100)
    assert b.seconds_to_target == pytest.approx(100.0) and b.examples_to_target == 384 and b.epochs == pytest.approx(0.0384)
    never = result("c1", 60.0, [0.95])
    assert "> 60" in sweep.format_table([never, b]) and "never" in sweep.format_table([never, b])
    assert sweep.time_ratio(never, b) is None and never.examples_to_target is None


def test_median_ratio_counts_a_run_that_never_reached_the_target_as_slowest():
    assert sweep.median_ratio([0.4, 0.6, 0.5]) == pytest.approx(0.5)
    assert sweep.median_ratio([0.4, None, 0.5]) == pytest.approx(0.5)
    assert sweep.median_ratio([0.4, None, None]) is None


def test_the_sweeps_legend_progress_and_table_fit_100_columns():
    """Each configuration is named once, in the legend; progress lines and the table name it by its short id."""
    described = {f"c{n}": sweep.describe_config(config) for n, config in enumerate(sweep.SWEEP, start=1)}
    legend = sweep.legend(described)
    assert legend.startswith("c1 = VGG ×1/8, batch 128, one-cycle peak 0.02, 1 epoch") and "\nc31 = VGG ×1/8" in legend
    assert "conv widths 64-64-128-128-256×11-128 before ×1/8" in " ".join(legend.split())
    progress = sweep.progress_line("c12", 2, 3, 12, 141.23, 0.97853)
    assert progress == "c12 s2  eval 3/12  141.2 s  97.85%"
    results = [result(f"c{n}", 1000.0 * n, [0.5, 0.98, 0.991][: 1 + n % 3], seed=n % 3) for n in range(1, 32)]
    table = sweep.format_table(results)
    assert len(table.splitlines()) == 32 and "c31 s1" in table
    lines = [*legend.splitlines(), progress, *table.splitlines()]
    assert max(map(len, lines)) <= sweep.COLUMNS, max(lines, key=len)


def test_simple_convnet_is_the_keras_example():
    assert simple_convnet().count_params() == 34_826


def test_widths_read_and_write_the_blogs_notation_and_keep_its_sixteen_levels():
    blog = "64-64-128-128-256×4-512×7-256"
    assert recipe.format_widths(BLOG_WIDTHS) == blog and recipe.parse_widths(blog) == BLOG_WIDTHS
    halved = (64, 64, 128, 128) + (256,) * 11 + (128,)
    assert recipe.parse_widths("64-64-128-128-256x11-128") == recipe.HALVED_TOP_WIDTHS == halved
    assert recipe.format_widths(recipe.HALVED_TOP_WIDTHS) == "64-64-128-128-256×11-128"
    for bad in ("64-64-128", "64-64-128-128-256×4-512×8-256", "0-64-128-128-256×4-512×7-256"):
        with pytest.raises(ValueError, match="16 conv levels"):
            recipe.parse_widths(bad)
    for bad in ("64-64-wide", "64-64-128-128-256×4-512×7-", "64×-64"):
        with pytest.raises(ValueError, match="widths look like"):
            recipe.parse_widths(bad)
    with pytest.raises(ValueError, match="16 conv levels"):
        recipe.training_arguments({**sweep.SWEEP[0], "widths": (64, 64)})


# --- the benchmark's VGG ------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_fused_batchnorm_computes_what_keras_does(training):
    x = np.random.default_rng(0).normal(3.0, 2.0, (16, 7, 7, 8)).astype("float32")
    keras_bn, fused = keras.layers.BatchNormalization(momentum=0.9), recipe.FusedBatchNormalization(momentum=0.9)
    for layer in (keras_bn, fused):
        layer.build(x.shape)
        layer.set_weights(
            [np.full(8, 1.5, "float32"), np.full(8, 0.2, "float32"), np.full(8, 0.5, "float32"), np.full(8, 2.0, "float32")]
        )
    np.testing.assert_allclose(fused(x, training=training), keras_bn(x, training=training), atol=1e-4)
    for ours, theirs in zip(fused.get_weights(), keras_bn.get_weights(), strict=True):  # moving statistics updated alike
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_fusing_swaps_the_conv_levels_batchnorm_keeps_the_weights_and_trains_and_reloads(tmp_path):
    model = build_model(blog_vgg(lrn=False, batchnorm=True), width=1 / 16)
    fused = recipe.fuse_batchnorm(model)
    kinds = [type(layer) for layer in fused.layers]
    assert kinds.count(recipe.FusedBatchNormalization) == 16  # the conv levels'; the two dense ones stay Keras' own
    assert kinds.count(keras.layers.BatchNormalization) == 2 and fused.count_params() == model.count_params()
    x, y = np.random.default_rng(0).random((32, 28, 28, 1), dtype=np.float32), np.arange(32) % 10
    np.testing.assert_allclose(fused.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    fused.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fused.fit(x, y, epochs=1, batch_size=16, verbose=0)
    fused.save(tmp_path / "fused.keras")
    loaded = keras.models.load_model(tmp_path / "fused.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), fused.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_smoothed_sparse_crossentropy_is_keras_smoothing_on_integer_labels():
    logits = np.random.default_rng(0).normal(size=(6, 10)).astype("float32")
    labels = np.array([0, 3, 9, 1, 1, 7])
    one_hot = np.eye(10, dtype="float32")[labels]
    expected = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(one_hot, logits)
    for shape in [(6,), (6, 1)]:  # Keras hands labels over as a column too
        got = recipe.SmoothedSparseCrossentropy(0.1)(labels.reshape(shape), logits)
        np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(recipe.SmoothedSparseCrossentropy(0.1)(labels, logits)) != pytest.approx(float(sparse))
    np.testing.assert_allclose(float(recipe.SmoothedSparseCrossentropy(0.0)(labels, logits)), float(sparse), rtol=1e-6)


def test_with_a_moving_average_the_clock_evaluates_the_average_and_training_goes_on_from_the_weights():
    splits = tiny_splits()
    keras.utils.set_random_seed(0)
    model = compile_classifier(tiny_model(), keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.9))
    for x, y in training_dataset(*splits["train"], batch_size=64):  # fit would end on the average
        model.train_on_batch(x, y)
    test_ds = make_dataset(*splits["test"], batch_size=64)
    live = [w.numpy() for w in model.trainable_variables]
    clock = training.TestAccuracyClock(test_ds)
    swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    callbacks = keras.callbacks.CallbackList([swap, clock], model=model, epochs=2)
    callbacks.on_epoch_begin(0)
    callbacks.on_epoch_end(0)  # the average swapped in, then evaluated
    average = [w.numpy() for w in model.trainable_variables]
    assert not all(np.array_equal(a, b) for a, b in zip(average, live, strict=True))
    assert clock.accuracies[0] == pytest.approx(model.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"])
    callbacks.on_epoch_begin(1)  # the weights back for the next interval (Keras swaps by adding: to float32's rounding)
    for w, before in zip(model.trainable_variables, live, strict=True):
        np.testing.assert_allclose(w.numpy(), before, rtol=0, atol=1e-6)


def test_each_sweep_configuration_builds_and_trains_what_its_row_names():
    seen = set()
    for config in sweep.SWEEP:
        name, arguments = sweep.describe_config(config), recipe.training_arguments(config)
        model = recipe.build_vgg(config, BUDGETS["cpu"].bn_momentum)
        fused = any(isinstance(layer, recipe.FusedBatchNormalization) for layer in model.layers)
        assert fused == config["fused_bn"] == ("fused BN" in name)  # the option reaches the model
        normed = any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
        assert normed == config.get("batchnorm", True) == ("no BatchNorm" not in name)
        rates = {layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)}
        assert rates == ({config.get("dropout", 0.25)} - {0.0}) and ("dropout" in name) == ("dropout" in config)
        arguments["compile"](model, 0.01)
        optimizer = model.optimizer
        assert isinstance(optimizer, keras.optimizers.SGD if config.get("optimizer") == "sgd" else keras.optimizers.Adam)
        assert optimizer.use_ema == bool(config.get("ema")) and ("moving average" in name) == bool(config.get("ema"))
        swaps = [type(c) for c in arguments["callbacks"]] == [keras.callbacks.SwapEMAWeights]
        assert swaps == bool(config.get("ema"))
        smoothing = config.get("label_smoothing", 0.0)
        assert getattr(model.loss, "label_smoothing", 0.0) == smoothing and ("label smoothing" in name) == bool(smoothing)
        warmup = int(config.get("warmup", 0.25) * 100)
        assert arguments["schedule"](0.01, 100).warmup_steps == warmup
        filters = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        widths = config.get("widths", BLOG_WIDTHS)
        assert filters == [round(w * config["width"]) for w in widths]  # 16 conv levels at the row's widths
        assert ("conv widths" in name) == (widths != BLOG_WIDTHS)
        seen.add(name)
    assert len(seen) == len(sweep.SWEEP)  # no two rows alike


def test_a_configuration_with_an_unknown_key_optimizer_or_fraction_or_fused_bn_without_batchnorm_is_refused():
    config = dict(sweep.SWEEP[0])
    with pytest.raises(ValueError, match="without BatchNorm"):
        recipe.build_vgg({**config, "fused_bn": True, "batchnorm": False}, 0.9)
    with pytest.raises(ValueError, match="unknown sweep keys"):
        recipe.training_arguments({**config, "dropuot": 0.0})
    with pytest.raises(ValueError, match="adam"):
        recipe.training_arguments({**config, "optimizer": "rmsprop"})
    for bad in [dict(warmup=1.0), dict(label_smoothing=-0.1)]:
        with pytest.raises(ValueError, match="fractions"):
            recipe.training_arguments({**config, **bad})


def test_run_sweep_names_each_configuration_once_and_runs_it_with_its_own_seeds(monkeypatch, capsys):
    calls = []

    def fake_train(name, model, splits, evals_per_epoch, report, **kw):
        calls.append((name, kw["callbacks"]))
        report(name, 1, 2.0, 0.5)
        return TrainingCurve(name, [0.5], [2.0], 1, 128, 1_000)

    monkeypatch.setattr(sweep, "train_and_evaluate", fake_train)
    monkeypatch.setattr(sweep, "build_vgg", lambda config, bn_momentum: tiny_model())
    configs = [sweep.SWEEP[0], {**sweep.SWEEP[0], "ema": 0.99, "seeds": (1, 2)}]
    results = sweep.run_sweep(configs, seeds=1, bn_momentum=0.9, splits=None, target=0.99, evals_per_epoch=8)
    assert [(r.config, r.seed) for r in results] == [("c1", 0), ("c2", 1), ("c2", 2)]
    assert [len(callbacks) for _, callbacks in calls] == [0, 1, 1] and calls[1][1][0] is not calls[2][1][0]  # one per run
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("c1 = VGG ×1/8") and out[1].startswith("c2 = VGG ×1/8")  # the legend, then the runs
    assert out[-3:] == ["c1 s0  eval 1/8  2.0 s  50.00%", "c2 s1  eval 1/8  2.0 s  50.00%", "c2 s2  eval 1/8  2.0 s  50.00%"]


def test_the_benchmark_hands_its_vgg_options_to_the_vgg_only(monkeypatch, capsys):
    calls = []

    def fake_train(short, seed, model, splits, target, evals_per_epoch, **kw):
        calls.append((short, model, kw))
        return result(short, 10.0, [0.995])

    monkeypatch.setattr(sweep, "train", fake_train)
    monkeypatch.setattr(recipe, "build_vgg", lambda config, bn_momentum: config)
    monkeypatch.setattr(cli.data, "mnist_splits", lambda budget: tiny_splits())
    monkeypatch.setattr(cli.models, "simple_convnet", lambda: "convnet")
    args = [
        "--seeds",
        "1",
        "--width",
        "0.125",
        "--label-smoothing",
        "0.1",
        "--batch-size",
        "64",
        "--vgg-epochs",
        "1",
        "--fused-bn",
    ]
    args += ["--dropout", "0", "--widths", "64-64-128-128-256x11-128"]
    assert cli.main(args + ["--skip-full-width"]) == 0
    (_, vgg, a), (_, convnet, b) = calls
    assert (vgg["label_smoothing"], vgg["fused_bn"], vgg["dropout"], vgg["widths"]) == (0.1, True, 0.0, recipe.HALVED_TOP_WIDTHS)
    assert (a["batch_size"], a["epochs"], callable(a["schedule"]), callable(a["compile"])) == (64, 1.0, True, True)
    assert convnet == "convnet" and "compile" not in b and (b["batch_size"], b["schedule"]) == (128, "constant")
    out = capsys.readouterr().out
    words = " ".join(out.split())
    assert "c1 = (a) VGG ×1/8, fused BN, batch 64, one-cycle peak 0.02, 1 epoch, dropout 0, label smoothing 0.1" in words
    assert "c2 = (b) Keras simple convnet, batch 128, Adam 0.001, 10 epochs" in words
    assert "ratios c1/c2 over 1 seeds: 1.00" in out and out.count("c1 = ") == 1  # named once


@pytest.mark.skipif(not os.environ.get("VGG_DATA_DIR"), reason="needs MNIST: VGG_DATA_DIR is not set")
def test_quick_run(capsys):
    # --skip-full-width: the full-width timing costs more than the rest of the quick run; the next test checks it
    assert cli.main(["--quick", "--skip-full-width"]) == 0
    out = capsys.readouterr().out
    words = " ".join(out.split())
    assert "quick mode" in out and "c1 = (a) VGG ×1/16, fused BN, batch 128" in out and "c2 = (b) Keras simple convnet" in out
    assert "label smoothing 0.1, conv widths 64-64-128-128-256×11-128 before ×1/16" in words
    assert "machine: " in out and "oneDNN" in out and "c1 s0  eval 1/2  " in out  # progress as it goes
    assert "34,826" in out and "seed 0: time to 99.0%, c1/c2: " in out and "ratios c1/c2 over 1 seeds" in out
    assert "full-width" not in out
    assert max(map(len, out.splitlines())) <= sweep.COLUMNS


def test_full_width_lines_time_the_blog_model_with_adam_and_extrapolate_an_epoch(monkeypatch):
    built = []

    def narrow(arch, **kwargs):  # the blog's model as full_width_lines asks for it, at 1/16 of the width to keep this short
        built.append((arch, kwargs))
        return build_model(arch, width=1 / 16, **kwargs)

    monkeypatch.setattr(speed, "build_model", narrow)
    lines = speed.full_width_lines(1)
    [(arch, kwargs)] = built
    assert arch == blog_vgg() and kwargs == {"initializer": "blog"}  # the blog's network, its N(0, 1) weights
    params = build_model(blog_vgg(), width=1 / 16).count_params()
    assert lines[0] == f"full-width blog model ({params:,} parameters, Adam):"
    assert "s per step of 128 images (mean of 1, after a" in lines[1]
    assert lines[2].startswith("  extrapolated: ") and lines[2].endswith(" minutes per epoch of 60,000 images on this machine")


def test_the_speed_probe_reports_one_configuration(capsys):
    assert cli.main(["--speed", '{"width": 0.0625, "steps": 2, "bn": "fused"}']) == 0
    probed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert probed["width"] == 0.0625 and probed["bn"] == "fused" and probed["steps"] == 2
    assert probed["images_per_second"] > 0 and probed["params"] == 210_622 and isinstance(probed["onednn"], bool)
    assert cli.main(["--speed", '{"width": 0.0625, "steps": 1, "widths": "64-64-128-128-256x11-128"}']) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["params"] < 210_622  # the narrower top levels
    with pytest.raises(ValueError, match="16 conv levels"):
        speed.speed_probe({"widths": "64-64"})
    with pytest.raises(ValueError, match="unknown --speed keys"):
        speed.speed_probe({"widht": 0.125})
    with pytest.raises(ValueError, match='net "vgg" or "convnet"'):
        speed.speed_probe({"net": "resnet"})


def test_the_old_command_says_where_the_benchmark_went():
    moved = subprocess.run([sys.executable, "-m", "vgg_helpers.bench", "--quick"], capture_output=True, text=True, cwd=ROOT)
    assert moved.returncode != 0 and "python -m benchmarks" in moved.stderr
    with pytest.raises(ImportError, match="python -m benchmarks"):
        import vgg_helpers.bench  # noqa: F401


# --- notebooks: run time and memory ---------------------------------------------------------------------------


def _notebook(tmp_path, name, *sources):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_notebook_memory_run(tmp_path):
    ok = _notebook(tmp_path, "ok", "import os", "assert os.environ['VGG_BUDGET'] == 'fast'", "block = bytearray(200 * 2**20)")
    bad = _notebook(tmp_path, "bad", "raise ValueError('broken on purpose')")
    before = os.environ.get("VGG_BUDGET")
    runs = [notebooks.run_notebook(ok, budget="fast"), notebooks.run_notebook(bad, budget="fast")]
    assert os.environ.get("VGG_BUDGET") == before  # restored
    assert runs[0].error == "" and runs[0].budget == "fast"
    if os.path.exists("/proc/self/status"):
        assert 200 < runs[0].peak_rss_mb < 1000  # the 200 MB block is in the kernel's peak
    assert "broken on purpose" in runs[1].error
    table = notebooks.format_notebook_table(runs, limit_mb=100)
    assert "over 100 MB" in table.splitlines()[2] and "error: ValueError: broken on purpose" in table


def test_notebook_tables_are_written_between_markers(tmp_path):
    Run = notebooks.NotebookRun
    runs = [Run("00_start_here", "cpu", 803.4, 8.2), Run("04_training_mnist", "cpu", 1362.0, 412.0)]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{notebooks.TABLE_START}\nold table\n{notebooks.TABLE_END}\noutro\n")
    notebooks.write_tables([readme], runs, "a test machine")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old table" not in text
    assert "| 00_start_here | 8 s | 803 MB |" in text and "| 04_training_mnist | 6.9 min | 1,362 MB |" in text
    assert "a test machine" in text and "python -m benchmarks --notebooks" in text
    # Running one notebook again replaces its row and keeps the others, in the notebooks' order.
    notebooks.write_tables([readme], [Run("03_exploding_loss", "cpu", 1400.0, 150.0)], "another machine")
    rows = list(notebooks.table_rows(readme.read_text()))
    assert rows == ["00_start_here", "03_exploding_loss", "04_training_mnist"]
    notebooks.write_tables([readme], [Run("00_start_here", "cpu", 900.0, 12.0)], "another machine")
    assert "| 00_start_here | 12 s | 900 MB |" in readme.read_text() and "803 MB" not in readme.read_text()
    bare = tmp_path / "bare.md"
    bare.write_text("no markers")
    before = readme.read_text()
    with pytest.raises(ValueError, match="has no table markers"):
        notebooks.write_tables([readme, bare], runs, "a test machine")
    assert readme.read_text() == before  # nothing written when one file cannot take the table


def test_saving_writes_back_only_a_notebook_that_ran(tmp_path):
    import nbformat

    ok = _notebook(tmp_path, "saved", "print(6 * 7)")
    notebooks.run_notebook(ok, budget="fast", save=True)
    assert "42" in nbformat.read(ok, as_version=4).cells[0].outputs[0]["text"]
    bad = _notebook(tmp_path, "broken", "print('partial')", "raise ValueError('broken on purpose')")
    before = bad.read_text()
    assert "broken on purpose" in notebooks.run_notebook(bad, budget="fast", save=True).error
    assert bad.read_text() == before
