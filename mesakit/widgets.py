"""Interactive figures that work with and without a kernel (design §9).

A figure that a reader scrubs through (a network's iterations, an agent's trajectory, a
sweep) is drawn once per frame when the notebook runs, and the frames are held in an
``ipywidgets.Stack`` whose visible child follows a slider. The link between them is a
``jslink``: it lives in the browser, so in the built website, with the widget state
embedded in the page and no kernel, the slider still changes the figure; in Jupyter and
Colab the same widget is live. (A ``Play`` button is left out on purpose: the static
widgets manager does not run its timer, so it would be a dead control on the site.)
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

from .core import check_positive_int

__all__ = ["frame_player", "figure_png"]


def figure_png(fig, dpi: int = 90) -> bytes:
    """The PNG bytes of a matplotlib figure, which is then closed (frames are drawn in a
    loop and would otherwise all be shown below the cell)."""
    import matplotlib.pyplot as plt

    check_positive_int("dpi", dpi)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def frame_player(frames: Sequence[bytes] | Sequence[Callable[[], object]], *, labels: Sequence[str] | None = None,
                 description: str = "frame"):
    """A slider that steps through ``frames``.

    ``frames`` are PNG images (bytes, e.g. from :func:`figure_png`), or functions that
    each return a matplotlib figure. ``labels`` (one per frame) name the frames next to
    the slider's value. Returns an ``ipywidgets.VBox``; display it as a cell's last
    expression, and describe the figure in the prose or a caption (an image widget has
    no alt text).

    Raises ValueError when ``frames`` is empty, ``labels`` has another length, or a frame
    is neither bytes nor a function returning a figure.

    Example (a loop of figures)::

        frame_player([lambda k=k: draw(k) for k in range(10)], labels=[...], description="step")
    """
    import ipywidgets as w

    frames = list(frames)
    if not frames:
        raise ValueError("frames must hold at least one image, got none")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"labels must have one entry per frame ({len(frames)}), got {len(labels)}")
    images = []
    for i, frame in enumerate(frames):
        if callable(frame):
            frame = figure_png(frame())
        if not isinstance(frame, (bytes, bytearray)):
            raise ValueError(f"frames[{i}] must be PNG bytes or a function returning a figure, "
                             f"got {type(frame).__name__}")
        images.append(w.Image(value=bytes(frame), format="png", layout=w.Layout(max_width="100%")))
    stack = w.Stack(images, selected_index=0)
    n = len(frames)
    slider = w.IntSlider(value=0, min=0, max=n - 1, step=1, description=description,
                         continuous_update=True, readout=True)
    links = [w.jslink((slider, "value"), (stack, "selected_index"))]
    controls = [slider]
    if labels is not None:
        caption = w.Stack([w.HTML(f"<span>{label}</span>") for label in labels], selected_index=0)
        links.append(w.jslink((slider, "value"), (caption, "selected_index")))
        controls.append(caption)
    box = w.VBox([w.HBox(controls), stack])
    box.links = links  # the browser-side links, for tests and the curious
    return box
