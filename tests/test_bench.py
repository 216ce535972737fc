"""The benchmark: its table logic, and a quick run end to end (correctness, not speed)."""

import os

import pytest

from vgg_helpers import bench
from vgg_helpers.models import simple_convnet
from vgg_helpers.training import TrainingCurve


def result(name, seconds, accuracies, to_target):
    intervals = [seconds / len(accuracies)] * len(accuracies)
    return TrainingCurve(name, 1000, 2000, len(accuracies), 100.0, accuracies, intervals, to_target, 500.0, 128)


def test_table_and_ratio():
    a = result("(a) vgg", 60.0, [0.98, 0.991], 60.0)
    b = result("(b) convnet", 100.0, [0.97, 0.985, 0.992], 95.0)
    table = bench.format_table([a, b], 0.99)
    assert "s to 99.0%" in table and "99.10%" in table and "99.20%" in table
    assert bench.time_ratio([a, b]) == pytest.approx(60 / 95)
    assert list(b.examples_seen) == [128, 256, 384] and b.elapsed_seconds[-1] == pytest.approx(100.0)
    never = result("(a) vgg", 60.0, [0.95], None)
    assert "> 60" in bench.format_table([never, b], 0.99)
    assert bench.time_ratio([never, b]) is None


def test_simple_convnet_is_the_keras_example():
    assert simple_convnet().count_params() == 34_826


@pytest.mark.skipif(not os.environ.get("VGG_DATA_DIR"), reason="needs MNIST: VGG_DATA_DIR is not set")
def test_quick_run(capsys):
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "quick mode" in out and "(a) VGG 16-conv He+BN ×0.0625" in out and "(b) Keras simple convnet" in out
    assert "34,826" in out and "ratio of time to 99.0%" in out
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
