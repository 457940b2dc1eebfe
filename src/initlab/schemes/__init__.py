"""Every initializer, with fans from a declared layout and exact gains.

Names in snake case are the catalogue's (``il.he_normal(nonlinearity="relu")``);
the classes behind them are exported too.
"""

from initlab.schemes.basic import (
    Constant,
    Normal,
    Ones,
    SmallRandom,
    TruncatedNormal,
    Uniform,
    Zeros,
)
from initlab.schemes.fans import LAYOUTS, Fans, fans, torch_fans
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

# snake-case names, as in the catalogue and torch.nn.init
variance_scaling = VarianceScaling
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
lecun_truncated_normal = LecunTruncatedNormal
glorot_normal = xavier_normal = GlorotNormal
glorot_uniform = xavier_uniform = GlorotUniform
glorot_truncated_normal = xavier_truncated_normal = GlorotTruncatedNormal
he_normal = kaiming_normal = HeNormal
he_uniform = kaiming_uniform = HeUniform
he_truncated_normal = kaiming_truncated_normal = HeTruncatedNormal
constant = Constant
zeros = Zeros
ones = Ones
normal = Normal
uniform = Uniform
small_random = SmallRandom
truncated_normal = TruncatedNormal
orthogonal = Orthogonal
sparse = Sparse
identity = eye = Identity
dirac = Dirac
delta_orthogonal = DeltaOrthogonal
zero_hadamard = ZeroHadamard
torch_default = TorchDefault
keras_default = KerasDefault
flax_default = FlaxDefault
lasagne_default = LasagneDefault

__all__ = [
    "Description",
    "Fans",
    "Initializer",
    "LAYOUTS",
    "Moments",
    "SchemeInfo",
    "activation_function",
    "fans",
    "gain",
    "gaussian_expectation",
    "get",
    "list_schemes",
    "register",
    "torch_fans",
    "Constant",
    "Normal",
    "Ones",
    "SmallRandom",
    "TruncatedNormal",
    "Uniform",
    "Zeros",
    "GlorotNormal",
    "GlorotTruncatedNormal",
    "GlorotUniform",
    "HeNormal",
    "HeTruncatedNormal",
    "HeUniform",
    "LecunNormal",
    "LecunTruncatedNormal",
    "LecunUniform",
    "VarianceScaling",
    "variance_scaling",
    "lecun_normal",
    "lecun_uniform",
    "lecun_truncated_normal",
    "glorot_normal",
    "xavier_normal",
    "glorot_uniform",
    "xavier_uniform",
    "glorot_truncated_normal",
    "xavier_truncated_normal",
    "he_normal",
    "kaiming_normal",
    "he_uniform",
    "kaiming_uniform",
    "he_truncated_normal",
    "kaiming_truncated_normal",
    "constant",
    "zeros",
    "ones",
    "normal",
    "uniform",
    "small_random",
    "truncated_normal",
    "DeltaOrthogonal",
    "Dirac",
    "Identity",
    "Orthogonal",
    "Sparse",
    "ZeroHadamard",
    "FlaxDefault",
    "KerasDefault",
    "LasagneDefault",
    "TorchDefault",
    "orthogonal",
    "sparse",
    "identity",
    "eye",
    "dirac",
    "delta_orthogonal",
    "zero_hadamard",
    "torch_default",
    "keras_default",
    "flax_default",
    "lasagne_default",
]
