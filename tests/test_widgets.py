"""mesakit.widgets: a frame player whose slider drives the figure through browser-side
links, so it works in a static page."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import ipywidgets as w  # noqa: E402
import pytest  # noqa: E402

from mesakit.widgets import figure_png, frame_player  # noqa: E402


def make_figure(k):
    def draw():
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, k])
        return fig
    return draw


def test_frames_slider_and_links():
    box = frame_player([make_figure(k) for k in range(3)], labels=["a", "b", "c"], description="step")
    controls, stack = box.children
    slider, caption = controls.children
    assert isinstance(stack, w.Stack) and len(stack.children) == 3
    assert all(bytes(img.value).startswith(b"\x89PNG") for img in stack.children)
    assert slider.max == 2 and slider.description == "step"
    assert bytes(stack.children[0].value) != bytes(stack.children[2].value)
    # Each link is a browser-side jslink, not a Python observer (which needs a kernel).
    pairs = {(l.source[0].model_id, l.source[1], l.target[0].model_id, l.target[1]) for l in box.links}
    assert all(type(l).__name__ == "Link" for l in box.links), "jslink, not a kernel-side link"
    assert (slider.model_id, "value", stack.model_id, "selected_index") in pairs
    assert (slider.model_id, "value", caption.model_id, "selected_index") in pairs


def test_figure_png_closes_the_figure():
    fig = make_figure(1)()
    n = len(plt.get_fignums())
    assert figure_png(fig).startswith(b"\x89PNG")
    assert len(plt.get_fignums()) == n - 1


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(frames=[]), "frames must hold"),
    (dict(frames=[b"x", b"y"], labels=["only one"]), "labels must have"),
    (dict(frames=["not an image"]), r"frames\[0\]"),
])
def test_bad_input_names_the_argument(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        frame_player(**kwargs)
