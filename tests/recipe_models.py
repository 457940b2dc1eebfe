"""Tiny models in the shapes of the libraries the recipes reproduce, the libraries' inits written from their
formulas, and one comparison of two inits over pooled seeds.

The reference inits are written here with torch.nn.init, from the formulas
docs/recipes.md quotes with file and commit; they share no code with
initlab's recipes. Every model has 2 or 3 blocks of width 64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

WIDTH = 64
VOCAB = 96
CONTEXT = 16

# -- Hugging Face models (callers skip their tests when transformers is not installed) -------------------
def hf_gpt2() -> nn.Module:
    """GPT2LMHeadModel, 2 blocks of width 64: Conv1D projections, tied lm_head."""
    import transformers

    config = transformers.GPT2Config(n_layer=2, n_embd=WIDTH, n_head=4, vocab_size=VOCAB, n_positions=CONTEXT,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


def _hf_decoder(family: str, **extra: Any) -> nn.Module:
    """transformers' ``{family}ForCausalLM``: 2 blocks of width 64, grouped-query attention, a padding row."""
    import transformers

    config = getattr(transformers, f"{family}Config")(
        num_hidden_layers=2, hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2, **extra,
    )
    return getattr(transformers, f"{family}ForCausalLM")(config)


def _hf_encoder(family: str, **extra: Any) -> nn.Module:
    """transformers' ``{family}ForMaskedLM``: 2 layers of width 64, a padding row in the word embedding."""
    import transformers

    config = getattr(transformers, f"{family}Config")(
        num_hidden_layers=2, hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_attention_heads=4,
        vocab_size=VOCAB, **extra,
    )
    return getattr(transformers, f"{family}ForMaskedLM")(config)


def hf_llama() -> nn.Module:
    """LlamaForCausalLM with initializer_range 0.03."""
    return _hf_decoder("Llama", initializer_range=0.03)


def hf_mistral() -> nn.Module:
    """MistralForCausalLM with a sliding window and initializer_range 0.025: LLaMA's init."""
    return _hf_decoder("Mistral", sliding_window=16, initializer_range=0.025)


def hf_qwen2() -> nn.Module:
    """Qwen2ForCausalLM: LLaMA's init, with biases on q, k and v."""
    return _hf_decoder("Qwen2", initializer_range=0.02)


def hf_bert() -> nn.Module:
    """BertForMaskedLM."""
    return _hf_encoder("Bert", max_position_embeddings=CONTEXT)


def hf_roberta() -> nn.Module:
    """RobertaForMaskedLM: BERT's init, padding rows in the word and position embeddings."""
    return _hf_encoder("Roberta", max_position_embeddings=CONTEXT + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2)


# -- comparing two inits --------------------------------------------------------------------------
Z = 5.0  # standard errors allowed for the std, mean and tail fractions (two-sided p ~ 6e-7 per check)
KS_ALPHA = 1e-6  # two-sample Kolmogorov-Smirnov level per parameter
TAILS = (2.0, 3.0)  # tail fractions beyond these multiples of the reference std tell normal, uniform, cut apart


# pooled samples are cut to this many values per side (they are independent draws, so the first ones will do)
SAMPLE = 2**15


def _ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |F_a - F_b| over the pooled points, from the two sorted samples."""
    a, b = a.sort().values, b.sort().values
    points = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, points, right=True).double() / a.numel()
    cdf_b = torch.searchsorted(b, points, right=True).double() / b.numel()
    return float((cdf_a - cdf_b).abs().max())


def _compare_values(name: str, ours: torch.Tensor, reference: torch.Tensor) -> None:
    n, m = ours.numel(), reference.numel()
    ref_std, our_std = reference.std().item(), ours.std().item()
    centred = (reference - reference.mean()) / ref_std
    kurtosis = min(float(centred.pow(4).mean()), 50.0)
    relative_se = math.sqrt((kurtosis - 1) / 4 * (1 / n + 1 / m))
    assert abs(our_std / ref_std - 1) < Z * relative_se, f"{name}: std {our_std:.6g} vs {ref_std:.6g}"
    mean_se = math.sqrt(ref_std**2 / m + our_std**2 / n)
    assert abs(ours.mean().item() - reference.mean().item()) < Z * mean_se, f"{name}: mean"
    for k in TAILS:
        p_ours = float((ours.abs() > k * ref_std).double().mean())
        p_ref = float((reference.abs() > k * ref_std).double().mean())
        pooled = (p_ours * n + p_ref * m) / (n + m)
        se = math.sqrt(max(pooled * (1 - pooled), 1 / (n + m)) * (1 / n + 1 / m))
        assert abs(p_ours - p_ref) < Z * se, f"{name}: fraction beyond {k} std {p_ours:.4g} vs {p_ref:.4g}"
    critical = math.sqrt(-0.5 * math.log(KS_ALPHA / 2)) * math.sqrt((n + m) / (n * m))
    assert _ks_statistic(ours, reference) < critical, f"{name}: distributions differ (KS)"


def assert_same_init(ours: dict[str, list[torch.Tensor]], reference: dict[str, list[torch.Tensor]]) -> None:
    """Per parameter, pooled over seeds: the same constants and zeros; else the same std, mean, tails and law."""
    assert set(ours) == set(reference), sorted(set(ours) ^ set(reference))
    for name in reference:
        ref_stack, our_stack = torch.stack(reference[name]).double(), torch.stack(ours[name]).double()
        ref_zero, our_zero = (ref_stack == 0).all(0), (our_stack == 0).all(0)
        assert torch.equal(ref_zero, our_zero), f"{name}: elements that are always zero differ"
        ref_values = ref_stack[:, ~ref_zero].reshape(-1)[:SAMPLE]
        our_values = our_stack[:, ~ref_zero].reshape(-1)[:SAMPLE]
        if ref_values.numel() == 0:
            continue
        if bool((ref_values == ref_values[0]).all()):
            assert bool((our_values == ref_values[0]).all()), f"{name}: constant {ref_values[0].item()} expected"
            continue
        _compare_values(name, our_values, ref_values)


def parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter once (tied ones under their first name), detached copies."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def pooled(make: Callable[[int], nn.Module], seeds: range) -> dict[str, list[torch.Tensor]]:
    """{name: [the parameter after ``make(seed)``, for each seed]}."""
    found: dict[str, list[torch.Tensor]] = {}
    for seed in seeds:
        for name, value in parameters(make(seed)).items():
            found.setdefault(name, []).append(value)
    return found


# -- nanoGPT (karpathy/nanoGPT model.py) --------------------------------------------------------------
@dataclass
class GPTConfig:
    n_layer: int = 2
    n_embd: int = WIDTH
    vocab_size: int = VOCAB
    block_size: int = CONTEXT


class LayerNorm(nn.Module):
    """nanoGPT's LayerNorm: weight and optional bias around F.layer_norm."""

    def __init__(self, size: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class GPTBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = LayerNorm(width), LayerNorm(width)
        self.attn = nn.Module()
        self.attn.c_attn, self.attn.c_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)


class NanoGPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.vocab_size, config.n_embd),
            "wpe": nn.Embedding(config.block_size, config.n_embd),
            "h": nn.ModuleList(GPTBlock(config.n_embd) for _ in range(config.n_layer)),
            "ln_f": LayerNorm(config.n_embd),
        })
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight


def nanogpt_reference(model: NanoGPT) -> NanoGPT:
    """GPT._init_weights (Linear, Embedding N(0, 0.02), biases 0), then c_proj.weight N(0, 0.02/sqrt(2 n_layer))."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)
    for name, param in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(param, 0.0, 0.02 / math.sqrt(2 * model.config.n_layer))
    return model


def megatron_reference(model: NanoGPT, sigma: float = 0.02) -> NanoGPT:
    """init_method_normal(sigma) for weights and embeddings, scaled_init_method_normal for the output projections."""
    for name, param in model.named_parameters():
        if param.dim() == 1:
            continue  # biases 0 and norms 1/0 as constructed
        std = sigma / math.sqrt(2.0 * model.config.n_layer) if name.endswith("c_proj.weight") else sigma
        nn.init.normal_(param, 0.0, std)
    for name, param in model.named_parameters():
        if name.endswith("bias") and "ln" not in name:
            nn.init.zeros_(param)
    return model


# -- torchtitan (torchtitan/models/llama3) ------------------------------------------------------------
@dataclass
class TitanArgs:
    dim: int = WIDTH
    n_layers: int = 3
    vocab_size: int = VOCAB
    depth_init: bool = True


class TitanBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention = nn.Module()
        for name in ("wq", "wk", "wv", "wo"):
            setattr(self.attention, name, nn.Linear(dim, dim, bias=False))
        self.feed_forward = nn.Module()
        self.feed_forward.w1 = nn.Linear(dim, 2 * dim, bias=False)
        self.feed_forward.w2 = nn.Linear(2 * dim, dim, bias=False)
        self.feed_forward.w3 = nn.Linear(dim, 2 * dim, bias=False)
        self.attention_norm, self.ffn_norm = nn.RMSNorm(dim), nn.RMSNorm(dim)


class Titan(nn.Module):
    def __init__(self, args: TitanArgs) -> None:
        super().__init__()
        self.model_args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleDict({str(i): TitanBlock(args.dim) for i in range(args.n_layers)})
        self.norm = nn.RMSNorm(args.dim)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)


def titan_reference(model: Titan) -> Titan:
    """Transformer.init_weights: embeddings N(0, 1), blocks with weight_init_std, output d^-1/2 cut at 3 std."""
    args = model.model_args
    nn.init.normal_(model.tok_embeddings.weight)
    for layer_id, block in model.layers.items():
        depth = int(layer_id) + 1 if args.depth_init else args.n_layers
        init_std = 0.02 / (2 * depth) ** 0.5
        for linear in (block.attention.wq, block.attention.wk, block.attention.wv, block.feed_forward.w1):
            nn.init.trunc_normal_(linear.weight, mean=0.0, std=0.02)
        for linear in (block.attention.wo, block.feed_forward.w2, block.feed_forward.w3):
            nn.init.trunc_normal_(linear.weight, mean=0.0, std=init_std)
        block.attention_norm.reset_parameters()
        block.ffn_norm.reset_parameters()
    model.norm.reset_parameters()
    final_out_std = args.dim**-0.5
    nn.init.trunc_normal_(model.output.weight, mean=0.0, std=final_out_std, a=-3 * final_out_std,
                          b=3 * final_out_std)
    return model


# -- timm VisionTransformer (timm/models/vision_transformer.py) -----------------------------------------
class LayerScale(nn.Module):
    """timm/layers/layer_scale.py LayerScale: gamma = init_values * ones(dim) (no init mode touches it)."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, init_values: float | None = None) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        if init_values:  # timm's Block: LayerScale when init_values is given, else Identity
            self.ls1, self.ls2 = LayerScale(dim, init_values), LayerScale(dim, init_values)


class ViT(nn.Module):
    def __init__(self, dim: int = WIDTH, patches: int = 16, classes: int = 10, init_values: float | None = None) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, dim))
        self.blocks = nn.ModuleList(ViTBlock(dim, init_values) for _ in range(2))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)


def _timm_tokens(model: ViT) -> None:
    nn.init.trunc_normal_(model.pos_embed, std=0.02)  # absolute bounds +-2, as timm's trunc_normal_
    nn.init.normal_(model.cls_token, std=1e-6)


def vit_timm_reference(model: ViT) -> ViT:
    """mode '': pos_embed, cls_token; Linear trunc_normal_(std=.02), bias 0; Conv2d reset_parameters."""
    _timm_tokens(model)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d | nn.LayerNorm):
            module.reset_parameters()
    return model


def vit_jax_reference(model: ViT, head_bias: float = 0.0) -> ViT:
    """mode 'jax': zero head, Xavier uniform Linears, mlp biases N(0, 1e-6), Conv2d lecun_normal_ (tf-style)."""
    _timm_tokens(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            if name.startswith("head"):
                nn.init.zeros_(module.weight)
                nn.init.constant_(module.bias, head_bias)
            else:
                nn.init.xavier_uniform_(module.weight)
                if "mlp" in name:
                    nn.init.normal_(module.bias, std=1e-6)
                else:
                    nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            nn.init.trunc_normal_(module.weight, 0.0, 1.0, -2.0, 2.0)  # cut at +-2 std of N(0, 1), then scaled
            module.weight.data.mul_(math.sqrt(1.0 / fan_in) / 0.87962566103423978)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            module.reset_parameters()
    return model


def vit_moco_reference(model: ViT) -> ViT:
    """mode 'moco': qkv U(+-sqrt(6 / (out/3 + in))), other Linears Xavier uniform, biases 0."""
    _timm_tokens(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            if "qkv" in name:
                bound = math.sqrt(6.0 / float(module.weight.shape[0] // 3 + module.weight.shape[1]))
                nn.init.uniform_(module.weight, -bound, bound)
            else:
                nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d | nn.LayerNorm):
            module.reset_parameters()
    return model


# -- torchvision ResNet (torchvision/models/resnet.py) --------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)


class Bottleneck(nn.Module):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)


class ResNet(nn.Module):
    def __init__(self, bottleneck: bool, channels: int = 32, groups: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        block: Callable[[], nn.Module] = (lambda: Bottleneck(channels, groups)) if bottleneck else (
            lambda: BasicBlock(channels))
        self.layer1 = nn.Sequential(block(), block())
        self.layer2 = nn.Sequential(block(), block())
        self.fc = nn.Linear(channels, 10)


def resnet_reference(model: ResNet, zero_init_residual: bool) -> ResNet:
    """ResNet.__init__: kaiming_normal_ fan_out relu for Conv2d, BatchNorm 1/0; fc as constructed."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
    model.fc.reset_parameters()
    if zero_init_residual:
        for module in model.modules():
            if isinstance(module, Bottleneck):
                nn.init.constant_(module.bn3.weight, 0)
            elif isinstance(module, BasicBlock):
                nn.init.constant_(module.bn2.weight, 0)
    return model


# -- fairseq-style encoder-decoder (T-Fixup, DeepNet) -----------------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(dim, dim))


class Layer(nn.Module):
    def __init__(self, dim: int, cross: bool) -> None:
        super().__init__()
        self.self_attn = Attention(dim)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        if cross:
            self.encoder_attn = Attention(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)


class Stack(nn.Module):
    def __init__(self, layers: int, cross: bool, padding_idx: int = 1) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, WIDTH, padding_idx=padding_idx)
        self.layers = nn.ModuleList(Layer(WIDTH, cross) for _ in range(layers))


class EncoderDecoder(nn.Module):
    def __init__(self, encoder_layers: int = 3, decoder_layers: int = 2) -> None:
        super().__init__()
        self.encoder = Stack(encoder_layers, cross=False)
        self.decoder = Stack(decoder_layers, cross=True)


def _fairseq_base(model: EncoderDecoder) -> None:
    """fairseq's Linear (Xavier uniform, bias 0), MultiheadAttention (q, k, v gain 1/sqrt(2)), Embedding."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0, std=module.embedding_dim**-0.5)
            nn.init.constant_(module.weight[module.padding_idx], 0)
    for module in model.modules():
        if isinstance(module, Attention):
            for linear in (module.q_proj, module.k_proj, module.v_proj):
                nn.init.xavier_uniform_(linear.weight, gain=1 / math.sqrt(2))


def t_fixup_reference(model: EncoderDecoder) -> EncoderDecoder:
    """fixup_initialization of the encoder and decoder layers, and the scaled embeddings (T-Fixup's fairseq)."""
    _fairseq_base(model)
    n, m = len(model.encoder.layers), len(model.decoder.layers)
    with torch.no_grad():
        for stack, scale in ((model.encoder, 0.67 * n ** (-1.0 / 4.0)), (model.decoder, (9 * m) ** (-1.0 / 4.0))):
            for layer in stack.layers:
                for name, param in layer.named_parameters():
                    if name in ("fc1.weight", "fc2.weight", "self_attn.out_proj.weight", "encoder_attn.out_proj.weight"):
                        param.mul_(scale)
                    elif name in ("self_attn.v_proj.weight", "encoder_attn.v_proj.weight"):
                        param.mul_(scale * 2**0.5)
        model.encoder.embed_tokens.weight.mul_((9 * n) ** (-1 / 4))
        model.decoder.embed_tokens.weight.mul_((9 * m) ** (-1 / 4))
    return model


def deepnet_reference(model: EncoderDecoder) -> EncoderDecoder:
    """deepnorm_init (Wang et al. 2022, Figure 2): Xavier normal gain beta for ffn, v_proj, out_proj, 1 for q, k."""
    n, m = len(model.encoder.layers), len(model.decoder.layers)
    betas = {"encoder": 0.87 * (n**4 * m) ** (-1 / 16), "decoder": (12 * m) ** (-1 / 4)}
    for stack_name, stack in (("encoder", model.encoder), ("decoder", model.decoder)):
        for name, module in stack.layers.named_modules():
            if not isinstance(module, nn.Linear):
                continue
            scaled = name.endswith(("fc1", "fc2", "v_proj", "out_proj"))
            nn.init.xavier_normal_(module.weight, gain=betas[stack_name] if scaled else 1.0)
            nn.init.zeros_(module.bias)
        nn.init.normal_(stack.embed_tokens.weight, mean=0, std=WIDTH**-0.5)
        nn.init.constant_(stack.embed_tokens.weight[stack.embed_tokens.padding_idx], 0)
    return model
