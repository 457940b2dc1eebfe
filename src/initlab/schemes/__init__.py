"""Every initializer, with fans from a declared layout and exact gains.

Each scheme is a class (``HeNormal``) and a snake-case factory of the
catalogue (``he_normal``, the same object, the spelling of ``initlab.he_normal``
and of scheme strings). torch's spellings (``xavier_*``, ``kaiming_*``,
``eye``) are accepted in scheme strings (``initlab.get("xavier_normal")``); as
attributes they are deprecated (docs/schemes.md lists every deprecated name).
"""

from typing import Any

from initlab.rng.deprecation import moved_attributes
from initlab.schemes import strings
from initlab.schemes.basic import (
    Constant,
    Normal,
    Ones,
    SmallRandom,
    TruncatedNormal,
    Uniform,
    Zeros,
)
from initlab.schemes.fans import LAYOUTS, Axes, Fans, fans, torch_fans
from initlab.schemes.gains import activation_function, gain, gaussian_expectation
from initlab.schemes.initializer import Description, Initializer, Moments
from initlab.schemes.presets import FlaxDefault, KerasDefault, LasagneDefault, TorchDefault
from initlab.schemes.registry import SchemeInfo, get, list_schemes, register
from initlab.schemes.structured import (
    DeltaOrthogonal,
    Dirac,
    Identity,
    Orthogonal,
    Sparse,
    ZeroHadamard,
)
from initlab.schemes.variance import (
    GlorotNormal,
    GlorotTruncatedNormal,
    GlorotUniform,
    HeNormal,
    HeTruncatedNormal,
    HeUniform,
    LecunNormal,
    LecunTruncatedNormal,
    LecunUniform,
    VarianceScaling,
)

# the catalogue's snake-case factories: calling one builds the scheme
variance_scaling = VarianceScaling
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
lecun_truncated_normal = LecunTruncatedNormal
glorot_normal = GlorotNormal
glorot_uniform = GlorotUniform
glorot_truncated_normal = GlorotTruncatedNormal
he_normal = HeNormal
he_uniform = HeUniform
he_truncated_normal = HeTruncatedNormal
constant = Constant
zeros = Zeros
ones = Ones
normal = Normal
uniform = Uniform
small_random = SmallRandom
truncated_normal = TruncatedNormal
orthogonal = Orthogonal
sparse = Sparse
identity = Identity
dirac = Dirac
delta_orthogonal = DeltaOrthogonal
zero_hadamard = ZeroHadamard
torch_default = TorchDefault
keras_default = KerasDefault
flax_default = FlaxDefault
lasagne_default = LasagneDefault

# the catalogue of this layer, in registration order: factory names and the classes behind them
FACTORIES = tuple(info.name for info in list_schemes())
CLASSES = tuple(globals()[name].__name__ for name in FACTORIES)

# torch.nn.init's names, kept as attributes for one release (scheme strings keep them for good)
ALIASES: dict[str, str] = {
    alias: name for name in FACTORIES for alias in globals()[name].aliases if ":" not in alias
}

# the frameworks' names (keras:he_normal, torch:kaiming_normal_, ...) join the catalogue's registry
from initlab.schemes import dialects  # noqa: E402

__all__ = [
    "Axes",
    "Description",
    "Fans",
    "Initializer",
    "LAYOUTS",
    "Moments",
    "SchemeInfo",
    "activation_function",
    "dialects",
    "fans",
    "gain",
    "gaussian_expectation",
    "get",
    "list_schemes",
    "register",
    "strings",
    "torch_fans",
    *CLASSES,
    *FACTORIES,
]

__getattr__: Any = moved_attributes(
    "initlab.schemes", {alias: ("initlab.schemes", name) for alias, name in ALIASES.items()}
)
