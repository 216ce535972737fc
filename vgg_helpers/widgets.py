"""Interactive explorers. Each is a thin ipywidgets layer over pure functions that tests call.

Only widgets and traits that behave the same in ipywidgets 7.7 (Colab) and 8 are used:
``Checkbox``, ``SelectionSlider``, ``Dropdown``, ``IntSlider``, ``HTML``, ``Output``, boxes,
and ``observe(..., names="value")``.
"""

from __future__ import annotations

import dataclasses
import html

import numpy as np

from vgg_helpers.architectures import BLOG_POOLS, BLOG_WIDTHS, LayerTable, blog_vgg, trace_levels

WIDTH_CHOICES = (("1/16", 1 / 16), ("1/8", 1 / 8), ("1/4", 1 / 4), ("1/2", 1 / 2), ("1", 1.0))


@dataclasses.dataclass
class Exploration:
    """What the architecture explorer shows for one choice: a per-level table, or an error message."""

    table: LayerTable | None
    error: str | None

    def summary(self) -> str:
        if self.error:
            return f"Not a valid network: {self.error}"
        flat = next(r for r in self.table if r.kind == "dense")
        conv_macs = self.table.total("macs", ["conv"])
        return (
            f"{self.table.total('params'):,} parameters · {self.table.total('macs') / 1e6:,.1f} MMACs per image "
            f"({conv_macs / self.table.total('macs'):.0%} in convs) · fc1 has {flat.params:,} parameters"
        )


#: A label as wide as its text (ipywidgets cuts labels at a fixed width by default: "pool padd…").
_FULL_LABEL = {"description_width": "initial"}


def explore(pools=BLOG_POOLS, width: float = 1.0, padding: str = "same") -> Exploration:
    """The blog network with pools after the levels in ``pools``, at ``width``, with ``padding`` pools."""
    try:
        arch = blog_vgg(pools=pools, pool_padding=padding)
        return Exploration(trace_levels(arch, width=width), None)
    except ValueError as err:
        return Exploration(None, str(err))


def exploration_html(result: Exploration) -> str:
    """The explorer's text: the summary line and the per-level table (or the error, in red)."""
    if result.error:
        return f"<p style='color:#b00020'><b>{html.escape(result.summary())}</b></p>"
    return f"<p><b>{html.escape(result.summary())}</b></p>{result.table._repr_html_()}"


def architecture_explorer(pools=BLOG_POOLS, width: float = 1.0, padding: str = "same"):
    """Checkboxes for pool positions, a width slider and a padding menu → live table and chart."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from vgg_helpers.plots import plot_layer_bars

    boxes = [
        widgets.Checkbox(value=level in pools, description=str(level), indent=False, layout=widgets.Layout(width="46px"))
        for level in range(1, len(BLOG_WIDTHS) + 1)
    ]
    width_slider = widgets.SelectionSlider(options=WIDTH_CHOICES, value=width, description="width ×", style=_FULL_LABEL)
    padding_menu = widgets.Dropdown(options=["same", "valid"], value=padding, description="pool padding", style=_FULL_LABEL)
    text = widgets.HTML()
    chart = widgets.Output()

    def update(_=None):
        chosen = tuple(level for level, box in enumerate(boxes, start=1) if box.value)
        result = explore(chosen, width_slider.value, padding_menu.value)
        text.value = exploration_html(result)
        chart.clear_output(wait=True)
        if result.table is not None:
            with chart:
                plot_layer_bars(result.table, "macs", title="Compute per level")
                plt.show()

    for control in boxes + [width_slider, padding_menu]:
        control.observe(update, names="value")
    update()
    pool_row = widgets.HBox([widgets.Label("pool after conv level:")] + boxes)
    ui = widgets.VBox([pool_row, widgets.HBox([width_slider, padding_menu]), chart, text])
    ui.controls = {"pools": boxes, "width": width_slider, "padding": padding_menu, "text": text}
    return ui


def level_feature_maps(extractor, image, level: int) -> np.ndarray:
    """Feature maps ``(h, w, c)`` of conv ``level`` (1-based) for one image ``(28, 28)`` or ``(28, 28, 1)``."""
    n_levels = len(extractor.outputs)
    if not 1 <= level <= n_levels:
        raise ValueError(f"level must be between 1 and {n_levels}, got {level}.")
    image = np.asarray(image, dtype="float32")
    if image.ndim == 2:
        image = image[..., None]
    if image.max() > 1.0:
        image = image / 255.0
    outputs = extractor(image[None], training=False)
    return np.asarray(outputs[level - 1][0])


def feature_map_explorer(extractor, images, labels, max_maps: int = 16):
    """Sliders for a digit and a level → that level's feature maps for that digit."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from vgg_helpers.plots import plot_feature_maps

    digit = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="test digit", style=_FULL_LABEL)
    level = widgets.IntSlider(value=1, min=1, max=len(extractor.outputs), description="level")
    caption = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        maps = level_feature_maps(extractor, images[digit.value], level.value)
        caption.value = (
            f"digit {digit.value} (label {int(labels[digit.value])}), level {level.value}: "
            f"{maps.shape[0]}×{maps.shape[1]}×{maps.shape[2]}"
        )
        out.clear_output(wait=True)
        with out:
            plot_feature_maps(maps, max_maps=max_maps, title=caption.value)
            plt.show()

    digit.observe(update, names="value")
    level.observe(update, names="value")
    update()
    ui = widgets.VBox([widgets.HBox([digit, level]), caption, out])
    ui.controls = {"digit": digit, "level": level, "caption": caption}
    return ui


# --- Init explorer (notebook 03) -------------------------------------------------------------------

INIT_CHOICES = ("normal", "glorot_uniform", "he_normal")


def init_scales(initializer: str, stddev: float, lrn: bool, batchnorm: bool, x, y, width: float = 1 / 8, seed: int = 0):
    """Per-layer activation statistics and the initial loss of the blog network under one initialisation.

    ``initializer`` is ``"normal"`` (N(0, ``stddev``²), as the blog with ``stddev=1``), ``"glorot_uniform"``
    or ``"he_normal"``. Returns ``(stats, loss)``.
    """
    import keras

    from vgg_helpers.diagnostics import activation_stats, initial_loss
    from vgg_helpers.models import build_model

    if initializer not in INIT_CHOICES:
        raise ValueError(f"initializer must be one of {', '.join(INIT_CHOICES)}, got {initializer!r}.")
    if not stddev > 0:
        raise ValueError(f"stddev must be positive, got {stddev}.")
    keras.utils.set_random_seed(seed)
    init = keras.initializers.RandomNormal(stddev=stddev) if initializer == "normal" else initializer
    model = build_model(blog_vgg(lrn=lrn, batchnorm=batchnorm), width=width, initializer=init)
    label = (
        f"{initializer}"
        + (f" σ={stddev:.3g}" if initializer == "normal" else "")
        + (" + LRN" if lrn else "")
        + (" + BN" if batchnorm else "")
    )
    return activation_stats(model, x, title=label), initial_loss(model, x, y)


def init_explorer(x, y, width: float = 1 / 8):
    """Initializer, stddev (log slider), LRN and BatchNorm → per-layer scale plot and initial loss, live."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from vgg_helpers.diagnostics import expected_initial_loss
    from vgg_helpers.plots import plot_scales

    init = widgets.Dropdown(options=list(INIT_CHOICES), value="normal", description="initializer", style=_FULL_LABEL)
    stddev = widgets.FloatLogSlider(value=1.0, base=10, min=-3, max=1, step=0.25, description="N(0, σ): σ", style=_FULL_LABEL)
    lrn = widgets.Checkbox(value=True, description="LRN")
    bn = widgets.Checkbox(value=False, description="BatchNorm")
    text = widgets.HTML()
    out = widgets.Output()

    def update(_=None):
        stddev.disabled = init.value != "normal"
        stats, loss = init_scales(init.value, stddev.value, lrn.value, bn.value, x, y, width=width)
        verdict = "✓ close to" if abs(loss - expected_initial_loss()) < 0.5 else "✗ far from"
        text.value = f"<b>{stats.title}</b>: initial loss {loss:.4g} ({verdict} ln 10 = 2.30)"
        out.clear_output(wait=True)
        with out:
            plot_scales({stats.title: stats}, title="Activation std per layer at initialisation")
            plt.show()

    for control in (init, stddev, lrn, bn):
        control.observe(update, names="value")
    update()
    ui = widgets.VBox([widgets.HBox([init, stddev]), widgets.HBox([lrn, bn]), text, out])
    ui.controls = {"initializer": init, "stddev": stddev, "lrn": lrn, "batchnorm": bn, "text": text}
    return ui
