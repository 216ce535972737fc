"""The benchmark: its table logic, and a quick run end to end (correctness, not speed)."""

import os

import pytest

from vgg_helpers import bench
from vgg_helpers.models import simple_convnet


def result(name, seconds, accuracies, to_target):
    return bench.BenchResult(name, 1000, 2000, len(accuracies), seconds, 100.0, accuracies, to_target, 500.0)


def test_table_and_ratio():
    a = result("(a) vgg", 60.0, [0.98, 0.991], 60.0)
    b = result("(b) convnet", 100.0, [0.97, 0.985, 0.992], 95.0)
    table = bench.format_table([a, b], 0.99)
    assert "s to 99.0%" in table and "99.10%" in table and "99.20%" in table
    assert bench.time_ratio([a, b]) == pytest.approx(60 / 95)
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
