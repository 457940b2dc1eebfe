"""The fans other frameworks compute for the same layer, from initlab's declared layout.

Each framework reads the fans off the kernel as *it* stores that layer, and
some of them disagree with initlab's (and each other's) for grouped,
depthwise and transposed convolutions. For a layer declared in one of
initlab's layouts (k = product of the kernel sizes, g = groups):

================  =================  ==================  ====================  =======================
layer             initlab            Keras 3             Flax / JAX            torch, Lasagne
================  =================  ==================  ====================  =======================
dense (out, in)   in, out            in, out             in, out               in, out
conv, g = 1       in k, out k        in k, out k         in k, out k           in k, out k
grouped conv      in/g k, out/g k    in/g k, out k       in/g k, out k         in/g k, out k
depthwise conv    k, out/g k         in k, out/g k (*)   k, out k              k, out k
transposed conv   in/g k, out/g k    out/g k, in k       in/g k, out k         out/g k, in k
================  =================  ==================  ====================  =======================

(*) Keras' ``DepthwiseConv2D`` stores (*k, in, depth_multiplier) and its
``compute_fans`` reads fan_in = in * k, fan_out = depth_multiplier * k
(keras/src/initializers/random_initializers.py and
keras/src/layers/convolutional/base_depthwise_conv.py, keras-team/keras
commit 3422977). A depthwise convolution is a grouped one with one input
channel per group (in/g = 1, g > 1). Keras' ``Conv2DTranspose`` stores
(*k, out, in), so its fan_in is the layer's output side. Flax stores every
kernel as (*k, in/g, out) (``feature_group_count``; google/flax commit
18f8f31, flax/linen/linear.py) and JAX's ``_compute_fans`` reads it.
Lasagne's ``Glorot`` and ``He`` read (n1, n2) = shape[:2] times the
receptive field of W as Lasagne stores it: dense (in, out), conv
(out, in/g, *k), transposed conv (in, out, *k) (Lasagne/Lasagne commit
5d3c63c, lasagne/init.py), i.e. torch's fans.

Layouts that are already a framework's own (``keras``/``jax``: (*k, in, out),
``Axes``, a ``Fans``) are read as that framework would read them.
"""

from __future__ import annotations

from collections.abc import Sequence

from initlab.schemes.fans import Axes, Fans, LayoutLike, fans, shape_of, torch_fans

__all__ = ["FRAMEWORKS", "framework_fans", "keras_fans", "flax_fans", "lasagne_fans", "is_depthwise"]


def is_depthwise(shape: tuple[int, ...], layout: LayoutLike, groups: int) -> bool:
    """A conv kernel with one input channel per group and more than one group."""
    return layout == "conv" and groups > 1 and len(shape) >= 3 and shape[1] == 1


def _own_layout(dims: tuple[int, ...], layout: LayoutLike) -> Fans | None:
    """The fans of layouts every framework reads the same way (Fans, Axes, vectors), else None."""
    if isinstance(layout, Fans | Axes) or (isinstance(layout, str) and layout.lstrip().startswith("axes(")):
        return fans(dims, layout)
    if layout == "vector" or len(dims) <= 1:
        n = dims[0] if dims else 1
        return Fans(n, n, 1)
    return None


def keras_fans(shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans:
    """Keras 3's ``compute_fans`` on the kernel as Keras stores the declared layer (see the module table)."""
    dims = shape_of(shape)
    own = _own_layout(dims, layout)
    if own is not None:
        return own
    declared = fans(dims, layout, groups)  # checks the layout, the rank and the groups
    k = declared.receptive
    if layout == "conv" and groups > 1:
        if is_depthwise(dims, layout, groups):
            return Fans(groups * k, dims[0] // groups * k, k)
        return Fans(dims[1] * k, dims[0] * k, k)
    if layout == "conv_transpose":
        return Fans(dims[1] * k, dims[0] * k, k)
    if layout in ("keras", "jax"):
        return Fans(dims[-2] * k, dims[-1] * k, k)
    return declared


def flax_fans(shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans:
    """JAX's ``_compute_fans`` on the kernel as Flax stores the declared layer, (*k, in/g, out)."""
    dims = shape_of(shape)
    own = _own_layout(dims, layout)
    if own is not None:
        return own
    declared = fans(dims, layout, groups)
    k = declared.receptive
    if layout == "conv":
        return Fans(dims[1] * k, dims[0] * k, k)
    if layout == "conv_transpose":
        return Fans(dims[0] // groups * k, dims[1] * groups * k, k)
    if layout in ("keras", "jax"):
        return Fans(dims[-2] * k, dims[-1] * k, k)
    return declared


def lasagne_fans(shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans:
    """Lasagne's (n1, n2) times the receptive field, in/out named: torch's fans for kernels.

    They are ``torch.nn.init._calculate_fan_in_and_fan_out``'s (dim 1 and dim 0
    times the receptive field), so torch and timm use this rule too.
    """
    dims = shape_of(shape)
    own = _own_layout(dims, layout)
    if own is not None:
        return own
    declared = fans(dims, layout, groups)
    if layout in ("conv", "conv_transpose"):
        return torch_fans(dims)
    return declared


# framework -> its fan rule on initlab's layouts
FRAMEWORKS = {"initlab": fans, "keras": keras_fans, "jax": flax_fans, "flax": flax_fans,
              "lasagne": lasagne_fans, "torch": lasagne_fans, "timm": lasagne_fans}


def framework_fans(framework: str, shape: Sequence[int], layout: LayoutLike = "linear", groups: int = 1) -> Fans:
    """The fans ``framework`` computes for the layer declared by ``shape``, ``layout`` and ``groups``."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    return FRAMEWORKS[framework](shape, layout, groups)
