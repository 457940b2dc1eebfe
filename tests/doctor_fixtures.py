"""Init bugs from real projects' issue trackers, each rebuilt as a small model.

Every fixture is (id, source, build, expected codes): ``build()`` returns
``(model, batch_or_None)`` initialised the way the issue describes; the doctor
must report one of the expected codes at warning or error level. The sources
are cited in docs/doctor.md. Memory that was never written is rebuilt
deterministically: a float tensor whose bits are random integers (garbage
of every exponent) or small integers (a freed index tensor: subnormals).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Builder = Callable[[], tuple[nn.Module, Any]]


@dataclass(frozen=True)
class Fixture:
    id: str
    source: str
    bug: str
    build: Builder
    expected: tuple[str, ...]
    needs_transformers: bool = False


def random_bits(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Never-written memory: every bit pattern of ``dtype`` equally likely (huge, tiny, NaN, inf)."""
    generator = torch.Generator().manual_seed(seed)
    bits = {torch.float32: torch.int32, torch.float16: torch.int16}[dtype]
    info = torch.iinfo(bits)
    raw = torch.randint(info.min, info.max, shape, generator=generator, dtype=torch.int64).to(bits)
    return raw.view(dtype).clone()


def stale_indices(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Memory last used by an int32 index tensor, read as float32: subnormal numbers."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50000, shape, generator=generator, dtype=torch.int32).view(torch.float32).clone()


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


# -- fan conventions ---------------------------------------------------------------------------
def depthwise_torch_fan_out() -> tuple[nn.Module, Any]:
    """pytorch/pytorch#23854: kaiming_normal_(mode='fan_out') on a depthwise conv reads fan_out = out * k."""
    _seeded(0)
    model = nn.Sequential(
        nn.Conv2d(8, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.ReLU(), nn.Conv2d(64, 16, 1)
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model, None


class MBConv(nn.Module):
    """An EfficientNet inverted bottleneck: expand 1x1, depthwise 3x3, project 1x1."""

    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        hidden = channels * expand
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.expand(x)))
        h = torch.relu(self.bn2(self.depthwise(h)))
        return x + self.bn3(self.project(h))


def goog_depthwise_fan_out() -> tuple[nn.Module, Any]:
    """huggingface/pytorch-image-models#84: _init_weight_goog takes fan_out = k * out_channels for depthwise convs."""
    _seeded(1)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), MBConv(16, 4), MBConv(16, 4))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            module.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
    return model, None


def ungrouped_fan_in() -> tuple[nn.Module, Any]:
    """ml-explore/mlx#4536: grouped conv sampled from U(+-1/sqrt(in_channels * k)), without the groups."""
    _seeded(2)
    model = nn.Sequential(nn.Conv2d(16, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1, groups=4), nn.ReLU())
    grouped = model[2]
    scale = math.sqrt(1.0 / (grouped.in_channels * 9))
    nn.init.uniform_(grouped.weight, -scale, scale)
    return model, None


def deform_conv_groups() -> tuple[nn.Module, Any]:
    """open-mmlab/mmdetection#5622: stdv = 1/sqrt(in_channels * k * k) for a conv with groups > 1."""
    _seeded(3)
    model = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, groups=4), nn.ReLU(), nn.Conv2d(64, 8, 1))
    conv = model[0]
    stdv = 1.0 / math.sqrt(conv.in_channels * 3 * 3)
    conv.weight.data.uniform_(-stdv, stdv)
    return model, None


def keras_depthwise_fans() -> tuple[nn.Module, Any]:
    """keras-team/keras#11773: a depthwise kernel's fans read as (kh, kw, in, multiplier): fan_in = in * k."""
    _seeded(4)
    model = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, groups=32), nn.ReLU(), nn.Conv2d(64, 8, 1))
    depthwise = model[0]
    fan_in, fan_out = 32 * 9, 2 * 9  # Keras's fans of the (3, 3, 32, 2) depthwise kernel
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(depthwise.weight, -bound, bound)
    return model, None


# -- truncation ----------------------------------------------------------------------------------
class FeedForward(nn.Module):
    """foundation-model-stack/foundation-model-stack#289: trunc_normal_(std=0.02) with the default a, b."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (self.w1, self.w2):
            nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(torch.relu(self.w1(x)))


def fms_trunc_normal() -> tuple[nn.Module, Any]:
    _seeded(5)
    return FeedForward(64, 256), None


class TinyViTBlock(nn.Module):
    """huggingface/pytorch-image-models#1286: timm's _init_weights calls trunc_normal_(m.weight, std=.02)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))


def timm_trunc_normal() -> tuple[nn.Module, Any]:
    _seeded(6)
    return TinyViTBlock(64), None


class TitanFeedForward(nn.Module):
    """pytorch/torchtitan#3334: trunc_normal_(std=init_std) with the default bounds, init_std depth-dependent."""

    def __init__(self, dim: int, hidden: int, layer_id: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.layer_id = layer_id

    def init_weights(self, init_std: float) -> None:
        nn.init.trunc_normal_(self.w1.weight, mean=0.0, std=0.02)
        for linear in (self.w2, self.w3):
            nn.init.trunc_normal_(linear.weight, mean=0.0, std=init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))


def torchtitan_trunc_normal() -> tuple[nn.Module, Any]:
    _seeded(7)
    model = TitanFeedForward(64, 172, layer_id=3)
    model.init_weights(0.02 / (2 * (model.layer_id + 1)) ** 0.5)
    return model, None


# -- residual projections --------------------------------------------------------------------------
class CausalBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = nn.ModuleDict({"c_attn": nn.Linear(dim, 3 * dim), "c_proj": nn.Linear(dim, dim)})
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(dim, 4 * dim), "c_proj": nn.Linear(4 * dim, dim)})
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.attn["c_attn"](self.ln_1(x)).split(c, dim=2)
        shape = (b, t, self.heads, c // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn["c_proj"](y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp["c_proj"](torch.nn.functional.gelu(self.mlp["c_fc"](self.ln_2(x))))


class TinyGPT(nn.Module):
    """A nanoGPT-shaped model: wte, wpe, h (blocks), ln_f, lm_head (tied when asked)."""

    def __init__(self, vocab: int = 128, dim: int = 64, layers: int = 8, heads: int = 4, tied: bool = False) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(64, dim)
        self.h = nn.ModuleList([CausalBlock(dim, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(positions)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def gpt_init(model: nn.Module, std: float = 0.02) -> None:
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)


def clvp_unscaled_c_proj() -> tuple[nn.Module, Any]:
    """huggingface/transformers#47478: the scaled init compares fully qualified names to 'c_proj.weight': never applied."""
    _seeded(8)
    model = TinyGPT(layers=8)
    gpt_init(model)
    for name, p in model.named_parameters():
        if name == "c_proj.weight":  # the bug: named_parameters() yields h.0.attn.c_proj.weight
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * 8))
    return model, None


class LlamaFeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))


class LlamaAttention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.wq(x), self.wk(x), self.wv(x)
        return self.wo(torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))


class LlamaBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention = LlamaAttention(dim)
        self.feed_forward = LlamaFeedForward(dim, 4 * dim)
        self.attention_norm = nn.RMSNorm(dim)
        self.ffn_norm = nn.RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


class TinyLlama(nn.Module):
    def __init__(self, vocab: int = 128, dim: int = 64, layers: int = 8) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([LlamaBlock(dim) for _ in range(layers)])
        self.norm = nn.RMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.output(self.norm(h))


def llama2c_scaled_w3() -> tuple[nn.Module, Any]:
    """karpathy/llama2.c#579: the scaled init names w3 (an input projection) instead of w2 (the output)."""
    _seeded(9)
    model = TinyLlama(layers=8)
    gpt_init(model)
    for pn, p in model.named_parameters():
        if pn.endswith("w3.weight") or pn.endswith("wo.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * 8))
    return model, None


def hf_gpt2_unscaled_c_proj() -> tuple[nn.Module, Any]:
    """huggingface/transformers#47458: GPT-2's c_proj weights left at 0.02 instead of 0.02 / sqrt(2 n_layer)."""
    import transformers

    _seeded(10)
    config = transformers.GPT2Config(n_layer=8, n_embd=64, n_head=4, vocab_size=128, n_positions=64)
    model = transformers.GPT2LMHeadModel(config)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=config.initializer_range)
    return model, None


# -- embeddings ---------------------------------------------------------------------------------------
def padding_overwritten() -> tuple[nn.Module, Any]:
    """pytorch/pytorch#6495: Embedding(padding_idx=...) then weight.data.normal_(0, 0.1): the padding row is random."""
    _seeded(11)
    model = nn.Sequential(nn.Embedding(100, 32, padding_idx=0), nn.Linear(32, 4))
    model[0].weight.data.normal_(0, 0.1)
    return model, None


def fairseq_sentence_encoder_padding() -> tuple[nn.Module, Any]:
    """facebookresearch/fairseq#912: init_bert_params redraws every Embedding row, the padding row included."""
    _seeded(12)
    model = nn.Sequential(nn.Embedding(200, 64, padding_idx=1), nn.LayerNorm(64), nn.Linear(64, 64))
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=0.02)
    return model, None


def fairseq_embedding_none_padding() -> tuple[nn.Module, Any]:
    """facebookresearch/fairseq#4076: constant_(m.weight[padding_idx], 0) with padding_idx None zeroes every row."""
    _seeded(13)
    embedding = nn.Embedding(64, 32, padding_idx=None)
    nn.init.normal_(embedding.weight, mean=0, std=32**-0.5)
    nn.init.constant_(embedding.weight[None], 0)  # weight[None] is the whole table
    return nn.Sequential(embedding, nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)), None


# -- never-written memory ------------------------------------------------------------------------------
class ClassifierWrapper(nn.Module):
    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(32, dim), nn.GELU(), nn.LayerNorm(dim))
        self.classifier = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


def hf_classifier_garbage() -> tuple[nn.Module, Any]:
    """huggingface/transformers#28968: a classifier head created inside __init__ holds values like 1e20..1e34."""
    _seeded(14)
    model = ClassifierWrapper(64, 5)
    with torch.no_grad():
        model.classifier.weight.copy_(random_bits(tuple(model.classifier.weight.shape), 14))
    return model, None


def hf_missing_weights_empty_fp16() -> tuple[nn.Module, Any]:
    """huggingface/transformers#30953: missing weights created with torch.empty in float16 hold NaN."""
    _seeded(15)
    model = ClassifierWrapper(64, 3).half()
    with torch.no_grad():
        model.classifier.weight.copy_(random_bits(tuple(model.classifier.weight.shape), 15, torch.float16))
    return model, None


def esm_contact_head_empty() -> tuple[nn.Module, Any]:
    """NVIDIA-BioNeMo/bionemo-recipes#983: the contact head's weight was left as whatever torch.empty held."""
    _seeded(16)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
    with torch.no_grad():
        model[2].weight.copy_(stale_indices(tuple(model[2].weight.shape), 16))
    return model, None


class Biaffine(nn.Module):
    """suolyer/PyTorch_BERT_Biaffine_NER#3: nn.Parameter(torch.Tensor(...)) never filled: huge weights, NaN logits."""

    def __init__(self, dim: int, labels: int) -> None:
        super().__init__()
        self.U = nn.Parameter(random_bits((labels, dim + 1, dim + 1), 17))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(*x.shape[:-1], 1)
        return torch.einsum("bxi,oij,byj->bxyo", torch.cat([x, ones], -1), self.U, torch.cat([y, ones], -1))


def biaffine_uninitialised() -> tuple[nn.Module, Any]:
    _seeded(17)
    return Biaffine(32, 5), None


class LSoftmaxLinear(nn.Module):
    """amirhfarzaneh/lsoftmax-pytorch#7: reset_parameters() exists but __init__ never calls it; the weight reads zeros."""

    def __init__(self, input_features: int, output_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(input_features, output_features))

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight.data.t())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


def lsoftmax_never_reset() -> tuple[nn.Module, Any]:
    _seeded(18)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), LSoftmaxLinear(64, 10)), None


def mistnet_zero_weights() -> tuple[nn.Module, Any]:
    """davharris/mistnet#87: weights never initialised (zero): no gradient reaches a network with a hidden layer."""
    _seeded(19)
    model = nn.Sequential(nn.Linear(16, 32), nn.Sigmoid(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 4))
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
    return model, None


# -- meta device / to_empty --------------------------------------------------------------------------------
class ScaledMLP(nn.Module):
    """A module that owns parameters but no reset_parameters (bionemo-recipes#1368)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.ones(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x) * self.gate


def bionemo_meta_init() -> tuple[nn.Module, Any]:
    """NVIDIA-BioNeMo/bionemo-recipes#1368: reset_parameters after to_empty misses parameters of custom modules."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Embedding(33, 32), ScaledMLP(32), nn.Linear(32, 33))
    return model, None


class LayerNormScaledBlock(nn.Module):
    """allenai/OLMo-core#698: a buffer set in __init__ that to_empty erases."""

    def __init__(self, dim: int, layer_id: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Linear(dim, dim)
        self.register_buffer("ln_scale", torch.tensor(1.0 / math.sqrt(layer_id + 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x) * self.ln_scale)


def olmo_buffer_to_empty() -> tuple[nn.Module, Any]:
    with torch.device("meta"):
        model = nn.Sequential(*[LayerNormScaledBlock(32, i) for i in range(4)])
    return model, None


# -- tied weights and heads ----------------------------------------------------------------------------------
def modalities_tied_std_one() -> tuple[nn.Module, Any]:
    """Modalities/modalities#456: the tied wte = lm_head initialised at std 1, right for an embedding only."""
    _seeded(20)
    model = TinyGPT(layers=2, tied=True)
    gpt_init(model)
    nn.init.normal_(model.wte.weight, mean=0.0, std=1.0)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * 2))
    return model, None


def mistral3_untied_head() -> tuple[nn.Module, Any]:
    """huggingface/transformers#43429: tie_word_embeddings declared, lm_head a separate randomly initialised tensor."""
    import transformers

    _seeded(21)
    config = transformers.LlamaConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
        vocab_size=128, max_position_embeddings=64, tie_word_embeddings=True,
    )
    model = transformers.LlamaForCausalLM(config)
    model.lm_head.weight = nn.Parameter(torch.randn(128, 64) * 0.02)
    return model, None


# -- scale with depth -----------------------------------------------------------------------------------------
def tf_he_half_variance() -> tuple[nn.Module, Any]:
    """tensorflow/tensorflow#19081: the 'He' init uses stddev = sqrt(scale) with scale = 1/n: half He's variance."""
    _seeded(22)
    layers: list[nn.Module] = []
    for _ in range(20):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, math.sqrt(1.0 / module.in_features))
            nn.init.zeros_(module.bias)
    return model, None


def transformer_encoder_copies() -> tuple[nn.Module, Any]:
    """pytorch/pytorch#72253: nn.TransformerEncoder deep-copies one initialised layer into every layer."""
    _seeded(23)
    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=3, enable_nested_tensor=False), None


FIXTURES: tuple[Fixture, ...] = (
    Fixture("depthwise_fan_out", "pytorch/pytorch#23854", "kaiming_normal_(mode='fan_out') on a depthwise conv", depthwise_torch_fan_out, ("fan_convention",)),
    Fixture("goog_depthwise", "huggingface/pytorch-image-models#84", "_init_weight_goog's depthwise fan_out", goog_depthwise_fan_out, ("fan_convention",)),
    Fixture("ungrouped_fan_in", "ml-explore/mlx#4536", "grouped conv bound from the ungrouped fan_in", ungrouped_fan_in, ("fan_convention",)),
    Fixture("deform_conv_groups", "open-mmlab/mmdetection#5622", "grouped conv stdv from in_channels * k * k", deform_conv_groups, ("fan_convention",)),
    Fixture("keras_depthwise", "keras-team/keras#11773", "Keras's fans of a depthwise kernel", keras_depthwise_fans, ("fan_convention",)),
    Fixture("fms_trunc", "foundation-model-stack/foundation-model-stack#289", "trunc_normal_(std=0.02), bounds +-2", fms_trunc_normal, ("truncation_never_binds",)),
    Fixture("timm_trunc", "huggingface/pytorch-image-models#1286", "timm trunc_normal_(std=.02)", timm_trunc_normal, ("truncation_never_binds",)),
    Fixture("torchtitan_trunc", "pytorch/torchtitan#3334", "Llama3 trunc_normal_ without bounds", torchtitan_trunc_normal, ("truncation_never_binds",)),
    Fixture("gpt2_c_proj", "huggingface/transformers#47458", "GPT-2 c_proj not depth-scaled", hf_gpt2_unscaled_c_proj, ("residual_not_scaled",), True),
    Fixture("clvp_c_proj", "huggingface/transformers#47478", "scaled init matched on full names: never applied", clvp_unscaled_c_proj, ("residual_not_scaled",)),
    Fixture("llama2c_w3", "karpathy/llama2.c#579", "scaled init on w3 instead of w2", llama2c_scaled_w3, ("residual_not_scaled",)),
    Fixture("padding_overwritten", "pytorch/pytorch#6495", "custom init overwrites the padding row", padding_overwritten, ("padding_row_nonzero",)),
    Fixture("fairseq_padding", "facebookresearch/fairseq#912", "init_bert_params redraws the padding row", fairseq_sentence_encoder_padding, ("padding_row_nonzero",)),
    Fixture("fairseq_none_padding", "facebookresearch/fairseq#4076", "weight[None] zeroes the whole embedding", fairseq_embedding_none_padding, ("zero_weights",)),
    Fixture("classifier_garbage", "huggingface/transformers#28968", "classifier weights 1e20..1e34", hf_classifier_garbage, ("nonfinite", "uninitialized_memory")),
    Fixture("empty_fp16", "huggingface/transformers#30953", "torch.empty fp16 weights hold NaN", hf_missing_weights_empty_fp16, ("nonfinite", "uninitialized_memory")),
    Fixture("contact_head_empty", "NVIDIA-BioNeMo/bionemo-recipes#983", "contact head never initialised", esm_contact_head_empty, ("uninitialized_memory",)),
    Fixture("biaffine_tensor", "suolyer/PyTorch_BERT_Biaffine_NER#3", "nn.Parameter(torch.Tensor(...)) never filled", biaffine_uninitialised, ("nonfinite", "uninitialized_memory")),
    Fixture("lsoftmax_zeros", "amirhfarzaneh/lsoftmax-pytorch#7", "reset_parameters never called: zero weight", lsoftmax_never_reset, ("zero_weights",)),
    Fixture("mistnet_zeros", "davharris/mistnet#87", "weights never initialised: zero", mistnet_zero_weights, ("zero_weights",)),
    Fixture("bionemo_meta", "NVIDIA-BioNeMo/bionemo-recipes#1368", "to_empty + reset_parameters misses custom parameters", bionemo_meta_init, ("not_reset_by_module",)),
    Fixture("olmo_buffer", "allenai/OLMo-core#698", "to_empty erases a buffer set in __init__", olmo_buffer_to_empty, ("not_reset_by_module",)),
    Fixture("tied_std_one", "Modalities/modalities#456", "tied embedding/head at std 1", modalities_tied_std_one, ("tied_owners_disagree",)),
    Fixture("untied_head", "huggingface/transformers#43429", "tying declared, head separate", mistral3_untied_head, ("tied_owners_disagree",), True),
    Fixture("he_half_variance", "tensorflow/tensorflow#19081", "He init with variance 1/n in a deep ReLU net", tf_he_half_variance, ("vanishing_signal",)),
    Fixture("encoder_copies", "pytorch/pytorch#72253", "TransformerEncoder layers are deep copies", transformer_encoder_copies, ("identical_copies",)),
)
