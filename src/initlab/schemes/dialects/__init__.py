"""Framework dialects: each framework's initializer names with that framework's meaning.

``initlab.get("keras:he_normal")`` is what ``keras.initializers.he_normal()``
draws -- a *truncated* normal on Keras' fans -- while ``initlab.get("he_normal")``
keeps the torch-compatible meaning. A dialect scheme's fields are the
framework's parameters with the framework's defaults, and its string form
round-trips like every scheme's (``initlab.get(str(s)) == s``).

==============  ================================================  =========================================
namespace       names                                             source
==============  ================================================  =========================================
``keras:``      keras.initializers (snake_case and CamelCase)     Keras 3.15.1, keras-team/keras 3422977
``jax:``        jax.nn.initializers                               jax 0.10.2, jax-ml/jax cec06d1
``flax:``       jax's names (re-exported by flax.linen), plus     flax 0.12.8, google/flax 18f8f31
                ``flax:default``, ``zeros_init``, ``ones_init``
``torch:``      torch.nn.init (``kaiming_normal_``, ...)          torch 2.13
``timm:``       timm.layers.weight_init                           huggingface/pytorch-image-models aa4b585
``lasagne:``    lasagne.init (CamelCase)                          Lasagne/Lasagne 5d3c63c
==============  ================================================  =========================================

``initlab.list_schemes("keras")`` lists a namespace; docs/schemes.md has the
table of names whose distribution differs between frameworks.
"""

from initlab.schemes.dialects import jax, keras, lasagne, torch
from initlab.schemes.dialects.base import Translated, Translation

__all__ = ["Translated", "Translation", "jax", "keras", "lasagne", "torch"]
