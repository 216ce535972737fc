"""The explorers' pure functions, and their widgets reacting to a change (no browser needed)."""

import os

import ipywidgets
import numpy as np
import pytest

from vgg_helpers import widgets
from vgg_helpers.architectures import blog_vgg, trace_levels
from vgg_helpers.models import build_model, level_outputs


def test_ipywidgets_version_under_test():
    """`make test-widgets7` runs this file on ipywidgets 7.7.1: make sure that is what loaded."""
    expected = os.environ.get("VGG_EXPECT_IPYWIDGETS")
    assert ipywidgets.__version__ == expected if expected else ipywidgets.__version__.split(".")[0] in {"7", "8"}


def test_explore_valid_and_invalid():
    result = widgets.explore((2, 4, 12), 1.0, "same")
    assert result.error is None and result.table.total("params") == 52_446_922
    assert "52,446,922 parameters" in result.summary()
    bad = widgets.explore((2, 4, 8, 12, 16), 1.0, "valid")
    assert bad.table is None and "pool 5 (after conv 16)" in bad.error
    assert "Not a valid network" in widgets.exploration_html(bad)
    assert "<table" in widgets.exploration_html(result)


def test_trace_levels_groups_each_level():
    levels = trace_levels(blog_vgg())
    assert len(levels) == 16 + 3
    assert levels[1].name == "level 2: conv + pool + LRN" and levels[1].output_shape == (14, 14, 64)
    assert levels[15].output_shape == (4, 4, 256)
    assert levels.total("params") == 52_446_922 and levels.total("macs") == 744_195_072
    bn = trace_levels(blog_vgg(lrn=False, batchnorm=True), width=1 / 8)
    assert bn[0].name == "level 1: conv + BatchNorm" and bn[0].params == 9 * 8 + 4 * 8


def test_architecture_explorer_updates_on_change():
    ui = widgets.architecture_explorer()
    text = ui.controls["text"]
    assert "52,446,922 parameters" in text.value
    ui.controls["width"].value = 1 / 8
    assert "825,506 parameters" in text.value
    ui.controls["padding"].value = "valid"
    ui.controls["pools"][7].value = True  # pool after level 8 too
    ui.controls["pools"][15].value = True  # and after 16: 28→14→7→3→1→0
    assert "Not a valid network" in text.value and "0×0" in text.value
    ui.controls["pools"][15].value = False
    assert "Not a valid network" not in text.value


@pytest.fixture(scope="module")
def extractor():
    return level_outputs(build_model(blog_vgg(), width=1 / 16))


def test_level_feature_maps(extractor):
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[10:18, 12:16] = 255
    shapes = [widgets.level_feature_maps(extractor, digit, level).shape for level in (1, 2, 12, 16)]
    assert shapes == [(28, 28, 4), (14, 14, 4), (4, 4, 32), (4, 4, 16)]
    with pytest.raises(ValueError, match="between 1 and 16"):
        widgets.level_feature_maps(extractor, digit, 17)


def test_feature_map_explorer_updates_on_change(extractor):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    ui = widgets.feature_map_explorer(extractor, images, np.arange(5))
    caption = ui.controls["caption"]
    assert caption.value.startswith("digit 0 (label 0), level 1: 28×28×4")
    ui.controls["level"].value = 12
    ui.controls["digit"].value = 3
    assert caption.value.startswith("digit 3 (label 3), level 12: 4×4×32")


def _descriptions(widget):
    """Every (description, description width) in a widget tree."""
    found = [(widget.description, widget.style.description_width)] if getattr(widget, "description", "") else []
    for child in getattr(widget, "children", ()):
        found += _descriptions(child)
    return found


def test_explorer_labels_are_not_cut():
    """A label wider than ipywidgets' default width ('pool padding') gets the width of its text, on 7 and 8."""
    labels = dict(_descriptions(widgets.architecture_explorer()))
    assert labels["pool padding"] == "initial" and labels["width ×"] == "initial"
