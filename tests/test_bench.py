"""The benchmark: its table logic, and a quick run end to end (correctness, not speed)."""

import os

import keras
import pytest

from vgg_helpers import bench
from vgg_helpers.models import simple_convnet
from vgg_helpers.training import TrainingCurve


def result(name, seconds, accuracies, to_target):
    intervals = [seconds / len(accuracies)] * len(accuracies)
    return TrainingCurve(
        name, 1000, 2000, len(accuracies), 100.0, accuracies, intervals, to_target, 500.0, steps_per_eval=1,
        batch_size=128, train_examples=10_000,
    )  # fmt: skip


def test_table_and_ratio():
    a = result("(a) vgg", 60.0, [0.98, 0.991], 60.0)
    b = result("(b) convnet", 100.0, [0.97, 0.985, 0.992], 95.0)
    table = bench.format_table([a, b], 0.99)
    assert "s to 99.0%" in table and "99.10%" in table and "99.20%" in table
    assert bench.time_ratio([a, b]) == pytest.approx(60 / 95)
    assert list(b.examples_seen) == [128, 256, 384] and b.elapsed_seconds[-1] == pytest.approx(100.0)
    never = result("(a) vgg", 60.0, [0.95], None)
    assert "> 60" in bench.format_table([never, b], 0.99) and "never" in bench.format_table([never, b], 0.99)
    assert bench.time_ratio([never, b]) is None
    assert b.examples_to_target == 384 and never.examples_to_target is None


def test_images_seen_count_the_smaller_last_batch_of_each_pass():
    # notebook 06: a quarter of the training set, 13,750 images = 107 batches of 128 and one of 54, 4 evaluations
    curve = TrainingCurve("x", 1, 1, 1.0, 1.0, [0.5] * 4, [1.0] * 4, None, 1.0, 27, 128, 13_750)
    assert list(curve.examples_seen) == [3_456, 6_912, 10_368, 13_750]
    # the benchmark: 55,000 images, 430 steps per pass, an evaluation every 54 steps; the 12th is in the second pass
    curve = TrainingCurve("x", 1, 1, 1.0, 1.0, [0.5] * 12, [1.0] * 12, None, 1.0, 54, 128, 55_000)
    assert curve.examples_seen[-1] == 55_000 + (648 - 430) * 128


def test_median_ratio_counts_a_run_that_never_reached_the_target_as_slowest():
    assert bench.median_ratio([0.4, 0.6, 0.5]) == pytest.approx(0.5)
    assert bench.median_ratio([0.4, None, 0.5]) == pytest.approx(0.5)
    assert bench.median_ratio([0.4, None, None]) is None


def test_simple_convnet_is_the_keras_example():
    assert simple_convnet().count_params() == 34_826


@pytest.mark.skipif(not os.environ.get("VGG_DATA_DIR"), reason="needs MNIST: VGG_DATA_DIR is not set")
def test_quick_run(capsys):
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "quick mode" in out and "(a) VGG ×0.0625, fused BN, batch 128" in out and "(b) Keras simple convnet" in out
    assert "label smoothing 0.1, conv widths 64-64-128-128-256×11-128 before ×0.0625" in out  # the default recipe
    assert "machine: " in out and "oneDNN" in out and "evaluation 1," in out  # progress as it goes
    assert "34,826" in out and "seed 0: ratio of time to 99.0%" in out and "ratios over 1 seeds" in out
    assert "full-width blog model (52,446,922 parameters, Adam)" in out and "minutes per epoch" in out


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
    runs = [bench.run_notebook(ok, budget="fast"), bench.run_notebook(bad, budget="fast")]
    assert os.environ.get("VGG_BUDGET") == before  # restored
    assert runs[0].error == "" and runs[0].budget == "fast"
    if os.path.exists("/proc/self/status"):
        assert 200 < runs[0].peak_rss_mb < 1000  # the 200 MB block is in the kernel's peak
    assert "broken on purpose" in runs[1].error
    table = bench.format_notebook_table(runs, limit_mb=100)
    assert "over 100 MB" in table.splitlines()[2] and "error: ValueError: broken on purpose" in table


def test_notebook_tables_are_written_between_markers(tmp_path):
    runs = [bench.NotebookRun("00_start_here", "cpu", 803.4, 8.2), bench.NotebookRun("04_training_mnist", "cpu", 1362.0, 412.0)]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.TABLE_START}\nold table\n{bench.TABLE_END}\noutro\n")
    bench.write_tables([readme], runs, "a test machine")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old table" not in text
    assert "| 00_start_here | 8 s | 803 MB |" in text and "| 04_training_mnist | 6.9 min | 1,362 MB |" in text
    assert "a test machine" in text
    # Running one notebook again replaces its row and keeps the others, in the notebooks' order.
    bench.write_tables([readme], [bench.NotebookRun("03_exploding_loss", "cpu", 1400.0, 150.0)], "another machine")
    rows = list(bench.table_rows(readme.read_text()))
    assert rows == ["00_start_here", "03_exploding_loss", "04_training_mnist"]
    bench.write_tables([readme], [bench.NotebookRun("00_start_here", "cpu", 900.0, 12.0)], "another machine")
    assert "| 00_start_here | 12 s | 900 MB |" in readme.read_text() and "803 MB" not in readme.read_text()
    bare = tmp_path / "bare.md"
    bare.write_text("no markers")
    before = readme.read_text()
    with pytest.raises(ValueError, match="has no table markers"):
        bench.write_tables([readme, bare], runs, "a test machine")
    assert readme.read_text() == before  # nothing written when one file cannot take the table


def test_saving_writes_back_only_a_notebook_that_ran(tmp_path):
    import nbformat

    ok = _notebook(tmp_path, "saved", "print(6 * 7)")
    bench.run_notebook(ok, budget="fast", save=True)
    assert "42" in nbformat.read(ok, as_version=4).cells[0].outputs[0]["text"]
    bad = _notebook(tmp_path, "broken", "print('partial')", "raise ValueError('broken on purpose')")
    before = bad.read_text()
    assert "broken on purpose" in bench.run_notebook(bad, budget="fast", save=True).error
    assert bad.read_text() == before


def test_speed_probe_reports_one_configuration(capsys):
    import json

    assert bench.main(["--speed", '{"width": 0.0625, "steps": 2, "bn": "fused"}']) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["width"] == 0.0625 and result["bn"] == "fused" and result["steps"] == 2
    assert result["images_per_second"] > 0 and result["params"] == 210_622 and isinstance(result["onednn"], bool)
    assert bench.main(["--speed", '{"width": 0.0625, "steps": 1, "widths": "64-64-128-128-256x11-128"}']) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["params"] < 210_622  # the narrower top levels
    with pytest.raises(ValueError, match="16 conv levels"):
        bench.speed_probe({"widths": "64-64"})
    with pytest.raises(ValueError, match="unknown --speed keys"):
        bench.speed_probe({"widht": 0.125})
    with pytest.raises(ValueError, match='net "vgg" or "convnet"'):
        bench.speed_probe({"net": "resnet"})


def test_each_sweep_configuration_builds_and_trains_what_its_row_names():
    from vgg_helpers.models import FusedBatchNormalization
    from vgg_helpers.runtime import BUDGETS

    seen = set()
    for config in bench.SWEEP:
        name, arguments = bench.describe_config(config), bench.sweep_arguments(config)
        model = bench._vgg(config, BUDGETS["cpu"])
        fused = any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
        assert fused == config["fused_bn"] == ("fused BN" in name)  # the option reaches the model
        normed = any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
        assert normed == config.get("batchnorm", True) == ("no BatchNorm" not in name)
        rates = {layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)}
        assert rates == ({config.get("dropout", 0.25)} - {0.0}) and ("dropout" in name) == ("dropout" in config)
        optimizer = arguments["optimizer"](0.01)
        assert isinstance(optimizer, keras.optimizers.SGD if config.get("optimizer") == "sgd" else keras.optimizers.Adam)
        assert optimizer.use_ema == bool(config.get("ema")) and ("moving average" in name) == bool(config.get("ema"))
        assert arguments["label_smoothing"] == config.get("label_smoothing", 0.0)
        assert arguments["warmup"] == config.get("warmup", 0.25)
        filters = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        widths = config.get("widths", bench.BLOG_WIDTHS)
        assert filters == [round(w * config["width"]) for w in widths]  # 16 conv levels at the row's widths
        assert ("conv widths" in name) == (widths != bench.BLOG_WIDTHS)
        seen.add(name)
    assert len(seen) == len(bench.SWEEP)  # no two rows alike


def test_sweep_rejects_an_unknown_key_or_optimizer_and_the_vgg_fused_bn_without_batchnorm():
    from vgg_helpers.runtime import BUDGETS

    config = dict(bench.SWEEP[0])
    with pytest.raises(ValueError, match="without BatchNorm"):
        bench._vgg({**config, "fused_bn": True, "batchnorm": False}, BUDGETS["cpu"])
    with pytest.raises(ValueError, match="unknown sweep keys"):
        bench.sweep_arguments({**config, "dropuot": 0.0})
    with pytest.raises(ValueError, match="adam"):
        bench.sweep_arguments({**config, "optimizer": "rmsprop"})


def test_widths_read_and_write_the_blogs_notation_and_keep_its_sixteen_levels():
    blog = "64-64-128-128-256×4-512×7-256"
    assert bench.format_widths(bench.BLOG_WIDTHS) == blog and bench.parse_widths(blog) == bench.BLOG_WIDTHS
    assert bench.parse_widths("64-64-128-128-256x11-128") == bench.HALVED_TOP_WIDTHS == (64, 64, 128, 128) + (256,) * 11 + (128,)
    assert bench.format_widths(bench.HALVED_TOP_WIDTHS) == "64-64-128-128-256×11-128"
    for bad in ("64-64-128", "64-64-128-128-256×4-512×8-256", "0-64-128-128-256×4-512×7-256"):
        with pytest.raises(ValueError, match="16 conv levels"):
            bench.parse_widths(bad)
    for bad in ("64-64-wide", "64-64-128-128-256×4-512×7-", "64×-64"):
        with pytest.raises(ValueError, match="widths look like"):
            bench.parse_widths(bad)
    with pytest.raises(ValueError, match="16 conv levels"):
        bench.sweep_arguments({**bench.SWEEP[0], "widths": (64, 64)})


def test_run_sweep_runs_each_configuration_with_its_own_seeds(monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "train_and_evaluate", lambda name, model, **kw: calls.append((name, kw["label_smoothing"])))
    monkeypatch.setattr(bench, "_vgg", lambda config, budget: None)
    configs = [bench.SWEEP[0], {**bench.SWEEP[0], "label_smoothing": 0.1, "seeds": (1, 2)}]
    bench.run_sweep(configs, seeds=1, budget=None, splits=None)
    assert [name.rsplit(" ", 1)[1] for name, _ in calls] == ["0", "1", "2"]  # the seed ends each run's name
    assert [ls for _, ls in calls] == [0.0, 0.1, 0.1]


def test_the_benchmark_hands_its_vgg_options_to_the_vgg_only(monkeypatch, capsys):
    from conftest import tiny_splits

    import vgg_helpers.data
    import vgg_helpers.models

    calls = []

    def fake_train(name, model, **kw):
        calls.append((name, kw))
        return result(name, 10.0, [0.995], 10.0)

    monkeypatch.setattr(bench, "train_and_evaluate", fake_train)
    monkeypatch.setattr(bench, "_vgg", lambda config, budget: config)
    monkeypatch.setattr(vgg_helpers.data, "mnist_splits", lambda budget: tiny_splits())
    monkeypatch.setattr(vgg_helpers.models, "simple_convnet", lambda: None)
    args = ["--seeds", "1", "--label-smoothing", "0.1", "--batch-size", "64", "--vgg-epochs", "1", "--fused-bn"]
    args += ["--dropout", "0", "--widths", "64-64-128-128-256x11-128"]
    assert bench.main(args + ["--skip-full-width"]) == 0
    (vgg, a), (convnet, b) = calls
    assert "fused BN, batch 64" in vgg and "label smoothing 0.1" in vgg and "(b) Keras simple convnet" in convnet
    assert "dropout 0," in vgg and "conv widths 64-64-128-128-256×11-128 before ×" in vgg
    assert (a["label_smoothing"], a["batch_size"], a["epochs"], a["schedule"]) == (0.1, 64, 1.0, "one-cycle")
    assert "label_smoothing" not in b and (b["batch_size"], b["schedule"]) == (128, "constant")
    assert "ratios over 1 seeds: 1.00" in capsys.readouterr().out
