"""Which plan for which model: one advice table, read by ``initlab.recommend`` and the guide.

:data:`ADVICE` lists the model kinds in the order they are asked about; the
first whose question a model answers "yes" to gives the plan. The answers
come from the model's structure (:class:`Traits`): recurrent layers,
attention modules and where their norm layers sit, residual branches found in
the data flow (``initlab.plan.analyze``), norm layers, the activations that
follow the weight layers, and depth. docs/guide.md explains each row with a
runnable snippet; ``docs/figures/make_flowchart.py`` draws the table as a
flowchart.

In order (kind: question -> plan):

- width_scaling: a width-scaling experiment? -> ``mup``
- lstm: LSTM layers? -> ``orthogonal; forget_bias=ones``
- recurrent: RNN / GRU layers? -> ``orthogonal``
- gpt2: GPT-2 (transformers GPT2 or nanoGPT names)? -> ``gpt2``
- llama: LLaMA, Mistral or Qwen2 (transformers classes)? -> ``llama``
- vit_timm: a timm-style VisionTransformer? -> ``vit_timm``
- transformer_pre_norm: attention, norm before each sublayer? -> ``auto``
- bert: BERT or RoBERTa (transformers classes)? -> ``bert``
- transformer_post_norm: attention, norm after each addition? -> ``glorot``
- resnet: a torchvision-style ResNet? -> ``resnet``
- resnet_norm: residual blocks with norm layers? -> ``he``
- resnet_no_norm: residual blocks without norm layers? -> ``fixup``
- deep_no_norm: 20 or more weight layers, no norm, no skips? -> ``lsuv``
- sigmoid: sigmoid activations? -> ``glorot_normal(gain=4.0)``
- tanh: tanh or other saturating activations? -> ``glorot_normal``
- relu: ReLU family, or anything else -> ``auto``

The family rows (gpt2, llama, vit_timm, bert, resnet) give the ready plan of
a model family (``initlab.plan.recipes``, docs/recipes.md) and stand before
the generic rows they refine. They read :attr:`Traits.family`, which
:func:`traits` recognises from the model's own class and parameter names,
never from a module the model merely holds (see :func:`family`): a model
that wraps a GPT-2 beside other layers gets a generic row, since the
recipe's rules would also reach the other layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from initlab.plan.graph import analyze
from initlab.plan.targets import is_weight_layer

__all__ = ["Advice", "ADVICE", "Traits", "Recommendation", "recommend", "traits", "family", "DEEP_LAYERS", "FAMILIES"]

# a plain stack this deep without norm layers or skips loses the differences between samples
# unless each layer is rescaled on data (Mishkin & Matas 2016 train 22 to 40 layers this way)
DEEP_LAYERS = 20
_SIGMOID = frozenset({"sigmoid", "hardsigmoid", "logsigmoid"})
_SATURATING = frozenset({"tanh", "hardtanh", "softsign", "tanhshrink"}) | _SIGMOID
_RECURRENT = (nn.RNNBase, nn.RNNCellBase)
# the model families the advice recognises: {family (a ready plan's name): what it is called in words}
FAMILIES = {"gpt2": "GPT-2", "llama": "LLaMA", "bert": "BERT", "vit_timm": "timm-style ViT",
            "resnet": "torchvision-style ResNet"}


@dataclass(frozen=True)
class Traits:
    """What the advice reads from a model's structure."""

    weight_layers: int
    activations: tuple[str, ...]  # names of the activations found, in order of first appearance
    norms: bool
    residual: bool
    attention: bool
    norm_first: bool | None  # attention models: norm before each sublayer (pre-norm); None if unknown
    recurrent: bool
    lstm: bool = False
    width_scaling: bool = False
    family: str | None = None  # a key of FAMILIES, from the model's class and parameter names (see family())

    def describe(self) -> str:
        parts = [f"recognised as {FAMILIES[self.family]}"] if self.family else []
        parts.append(f"{self.weight_layers} weight layers")
        parts.append("activations " + ", ".join(self.activations) if self.activations else "no activation found")
        parts.append("norm layers" if self.norms else "no norm layers")
        parts.append("residual branches" if self.residual else "no residual branches")
        if self.attention:
            place = {True: "pre-norm", False: "post-norm", None: "norm placement unknown"}[self.norm_first]
            parts.append(f"attention ({place})")
        if self.recurrent:
            parts.append("recurrent layers")
        if self.width_scaling:
            parts.append("width-scaling experiment")
        return "; ".join(parts)


@dataclass(frozen=True)
class Advice:
    """One row of the advice table: a kind of model, the question that finds it, and its plan."""

    kind: str
    model: str  # the kind of model in words, as the guide's heading
    question: str  # the flowchart's question
    plan: str
    reason: str  # two sentences
    reference: str
    matches: Callable[[Traits], bool]
    needs_batch: bool = False  # a data-driven plan: init_model needs batch=

    def plan_line(self) -> str:
        """The line to paste: ``il.init_model(model, plan=..., seed=0)``."""
        batch = ", batch=x" if self.needs_batch else ""
        return f'il.init_model(model, plan="{self.plan}", seed=0{batch})'


def _sigmoid(t: Traits) -> bool:
    return any(name in _SIGMOID for name in t.activations)


def _saturating(t: Traits) -> bool:
    return any(name in _SATURATING for name in t.activations)


ADVICE: tuple[Advice, ...] = (
    Advice(
        "width_scaling", "width-scaling experiments (muP)", "a width-scaling experiment?", "mup",
        "Under the maximal update parametrization the hidden weights keep Var = 1/fan_in while the output layer "
        "shrinks as 1/fan_in, so every layer's update stays the same size as the width grows. Hyperparameters "
        "tuned on a narrow model then carry over to a wide one (the learning-rate multipliers are set in the "
        "optimizer).",
        "Yang et al. 2022 (Tensor Programs V)",
        lambda t: t.width_scaling,
    ),
    Advice(
        "lstm", "LSTMs", "LSTM layers?", "orthogonal; forget_bias=ones",
        "An LSTM's weights are applied once per time step, so orthogonal weights, whose singular values are all "
        "1, neither shrink nor blow up the state over the sequence. The forget-gate bias starts at 1, so the "
        "cell keeps its memory and its output a usable scale from the first step.",
        "Saxe, McClelland & Ganguli 2014; Gers, Schmidhuber & Cummins 2000; Jozefowicz, Zaremba & Sutskever 2015",
        lambda t: t.lstm,
    ),
    Advice(
        "recurrent", "RNNs and GRUs", "RNN / GRU layers?", "orthogonal",
        "A recurrent weight is applied once per time step, so its singular values are raised to the sequence "
        "length: orthogonal weights have all singular values 1 and neither shrink nor blow up the state. The "
        "input weights get the same orthogonal draw and the biases start at zero.",
        "Saxe, McClelland & Ganguli 2014; Le, Jaitly & Hinton 2015",
        lambda t: t.recurrent,
    ),
    Advice(
        "gpt2", "GPT-2 and nanoGPT", "GPT-2 (transformers GPT2 or nanoGPT names)?", "gpt2",
        "GPT-2 draws every weight and embedding from N(0, 0.02^2), with zero biases and LayerNorms 1 and 0, and "
        "shrinks the residual output projections (c_proj) to std 0.02/sqrt(2 x layers), so the 2L branches "
        "that add up in the stream keep it at a bounded scale. The plan reads the number of layers and "
        "initializer_range from the model, so this depth scaling, which hand-written inits often miss, is "
        "always applied.",
        "Radford et al. 2019; transformers GPT2PreTrainedModel._init_weights; nanoGPT model.py",
        lambda t: t.family == "gpt2",
    ),
    Advice(
        "llama", "LLaMA (Hugging Face transformers)", "LLaMA, Mistral or Qwen2 (transformers classes)?", "llama",
        "Hugging Face LLaMA draws every Linear and embedding weight from N(0, initializer_range^2), with the "
        "padding row 0 and the RMSNorm weights 1; the RMSNorm before each sublayer rescales its input, so no "
        "depth scaling is added. torchtitan trains LLaMA with depth-scaled output projections instead: that "
        "is the plan torchtitan.",
        "Touvron et al. 2023; transformers LlamaPreTrainedModel._init_weights (Mistral and Qwen2 use the same)",
        lambda t: t.family == "llama",
    ),
    Advice(
        "vit_timm", "Vision Transformers (timm-style VisionTransformer)", "a timm-style VisionTransformer?",
        "vit_timm",
        "timm draws every Linear weight, the head's too, and the position embedding from N(0, 0.02^2), the "
        "class token from N(0, 1e-6^2), and keeps torch's default for the patch convolution. Its other modes, "
        "JAX-style with a zero head and MoCo v3's split q/k/v bounds, are the plans vit_jax and vit_moco.",
        "Dosovitskiy et al. 2021; timm vision_transformer.py VisionTransformer.init_weights",
        lambda t: t.family == "vit_timm",
    ),
    Advice(
        "transformer_pre_norm", "Transformers with pre-norm (norm before attention and MLP)",
        "attention, norm before each sublayer?", "auto",
        "Each sublayer reads a normalised stream, so a variance-preserving init of its linears (gain 1, or the "
        "gain of the MLP's activation; embeddings N(0, 1)) keeps every branch at unit scale. The stream grows "
        "with depth as branches add up, which the final norm absorbs; GPT-2 also scales the branches' output "
        "projections by 1/sqrt(2 x layers).",
        "Xiong et al. 2020; Radford et al. 2019",
        lambda t: t.attention and t.norm_first is not False,
    ),
    Advice(
        "bert", "BERT (Hugging Face transformers)", "BERT or RoBERTa (transformers classes)?", "bert",
        "BERT draws every weight and embedding from N(0, initializer_range^2) (0.02), with the padding row of "
        "the word embedding 0, biases 0 and LayerNorms 1 and 0. The LayerNorm after each residual addition "
        "resets the scale, so no depth scaling is needed.",
        "Devlin et al. 2019; transformers BertPreTrainedModel._init_weights (RoBERTa's is the same)",
        lambda t: t.family == "bert",
    ),
    Advice(
        "transformer_post_norm", "Transformers with post-norm (norm after each residual addition)",
        "attention, norm after each addition?", "glorot",
        "The norm after each addition resets the scale, so the original Transformer's Glorot-uniform weights "
        "keep attention logits and MLP outputs in range. Post-norm stacks still need learning-rate warm-up, "
        "since the gradient near the output is large at init.",
        "Vaswani et al. 2017; Glorot & Bengio 2010; Xiong et al. 2020",
        lambda t: t.attention,
    ),
    Advice(
        "resnet", "torchvision-style ResNets (Bottleneck / BasicBlock)", "a torchvision-style ResNet?", "resnet",
        "torchvision draws every convolution from N(0, 2/fan_out) (Kaiming normal, fan_out mode), sets the "
        "BatchNorm weights to 1 and biases to 0, and keeps torch's default for the final fc. With "
        "resnet(zero_init_residual=True) the last norm of each block starts at 0, so every block starts as the "
        "identity, which helps large-batch training.",
        "He et al. 2016; Goyal et al. 2017; torchvision resnet.py ResNet.__init__",
        lambda t: t.family == "resnet",
    ),
    Advice(
        "resnet_norm", "ResNets with normalisation (BatchNorm, LayerNorm, GroupNorm)",
        "residual blocks with norm layers?", "he",
        "The norm layers rescale each block's pre-activations, so He's Var = 2/fan_in keeps the ReLU branches "
        "at unit scale and the sum of branches grows only as the number of blocks. This is torchvision's "
        "ResNet init (Kaiming normal, BatchNorm weight 1, bias 0).",
        "He et al. 2015; He et al. 2016; Ioffe & Szegedy 2015",
        lambda t: t.residual and t.norms,
    ),
    Advice(
        "resnet_no_norm", "ResNets without normalisation", "residual blocks without norm layers?", "fixup",
        "Without norms every residual branch adds its variance to the stream, so L blocks at unit scale grow "
        "the output as sqrt(L) or worse; Fixup zeroes each branch's last layer and scales the others by "
        "L^(-1/(2m-2)). Blocks with a residual scalar can use skipinit (the scalar starts at 0) instead.",
        "Zhang, Dauphin & Ma 2019 (Fixup); De & Smith 2020 (SkipInit)",
        lambda t: t.residual,
    ),
    Advice(
        "deep_no_norm", f"very deep plain nets ({DEEP_LAYERS} or more weight layers, no norm, no skips)",
        f"{DEEP_LAYERS}+ weight layers, no norm, no skips?", "lsuv",
        "Over many layers the small departures from variance preservation compound and the samples' outputs "
        "become parallel; orthogonal weights rescaled on a batch until each layer's output has unit variance "
        "keep both the scale and the differences. It needs one batch of training data.",
        "Mishkin & Matas 2016; Saxe, McClelland & Ganguli 2014",
        lambda t: not t.norms and not t.residual and t.weight_layers >= DEEP_LAYERS,
        needs_batch=True,
    ),
    Advice(
        "sigmoid", "sigmoid nets", "sigmoid activations?", "glorot_normal(gain=4.0)",
        "Sigmoid's slope is 1/4 in its linear range, so Glorot's variance 2/(fan_in + fan_out) times 16 keeps "
        "the backward signal from shrinking 4x per layer. Smaller weights leave every unit near 0.5 with a "
        "vanishing gradient; larger ones saturate.",
        "Glorot & Bengio 2010; Bengio 2012 (Practical recommendations)",
        _sigmoid,
    ),
    Advice(
        "tanh", "tanh nets (and other saturating activations)", "tanh or other saturating activations?",
        "glorot_normal",
        "Glorot's Var = 2/(fan_in + fan_out) keeps tanh in its linear range, where the forward and the backward "
        "signal both keep their scale. Small weights (0.01 N(0, 1)) shrink the signal at every layer; large ones "
        "saturate the units and stop the gradient.",
        "Glorot & Bengio 2010; LeCun et al. 1998",
        _saturating,
    ),
    Advice(
        "relu", "MLPs and CNNs with ReLU-family activations (and anything else)", "ReLU family, or anything else",
        "auto",
        "auto sets std = gain / sqrt(fan_in) with the gain of the activation that follows each layer: He's "
        "sqrt(2) for ReLU, the exact gain for leaky ReLU, GELU or SiLU, 1 before the output. The variance of "
        "the signal then stays the same from layer to layer, forward and backward.",
        "He et al. 2015; LeCun et al. 1998",
        lambda t: True,
    ),
)


@dataclass(frozen=True)
class Recommendation:
    """The advice for one model: the table row it matched and the traits that decided it."""

    advice: Advice
    traits: Traits

    @property
    def plan(self) -> str:
        return self.advice.plan

    @property
    def kind(self) -> str:
        return self.advice.kind

    def text(self) -> str:
        """The advice in words: what was found, the plan, why, and the line to paste."""
        advice = self.advice
        return "\n".join(
            [
                f"model:     {self.traits.describe()}",
                f"kind:      {advice.model}",
                f"plan:      {advice.plan}",
                f"why:       {advice.reason}",
                f"reference: {advice.reference}",
                f"paste:     {advice.plan_line()}",
                "guide:     docs/guide.md#" + advice.kind.replace("_", "-"),
            ]
        )

    def __str__(self) -> str:
        return self.text()


def _activation_name(found: Any) -> str | None:
    if found is None:
        return None
    if isinstance(found, str):
        return found.lower()
    if isinstance(found, nn.Module):
        return {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ReLU6": "relu6"}.get(
            type(found).__name__, type(found).__name__.lower()
        )
    return getattr(found, "__name__", None)


def _norm_first(model: nn.Module, modules: dict[str, nn.Module]) -> bool | None:
    """Pre-norm (True), post-norm (False) or unknown (None), from torch's flag or the block's child order."""
    flags = [m.norm_first for m in modules.values() if isinstance(getattr(m, "norm_first", None), bool)]
    if flags:
        return all(flags)
    for name, module in modules.items():
        if not _is_attention(module):
            continue
        parent = modules.get(name.rpartition(".")[0])
        if parent is None or parent is module:
            continue
        order = [child for _, child in parent.named_children()]
        position = order.index(module)
        if any(_is_norm(child) for child in order[:position]):
            return True
        if any(_is_norm(child) for child in order[position:]) or any(_is_norm(m) for m in module.modules()):
            return False
    return None


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or "Attention" in type(module).__name__


def _is_norm(module: nn.Module) -> bool:
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm)
    return isinstance(module, norms) or type(module).__name__.endswith("Norm")



_GPT2_NAMES = frozenset({"wte", "wpe", "c_attn", "c_fc", "c_proj"})  # GPT-2's module names (HF and nanoGPT)
# (transformers' model folder, its class-name prefix, the family whose init it uses): Mistral and Qwen2
# keep PreTrainedModel._init_weights as LLaMA does, RoBERTa's _init_weights is BERT's (transformers 5.24.0)
_TRANSFORMERS_FAMILIES = (
    ("gpt2", "GPT2", "gpt2"),
    ("llama", "Llama", "llama"),
    ("mistral", "Mistral", "llama"),
    ("qwen2", "Qwen2", "llama"),
    ("bert", "Bert", "bert"),
    ("roberta", "Roberta", "bert"),
)


def _from_transformers(model: nn.Module) -> str | None:
    """gpt2 / llama / bert when the model's class is one of transformers' classes of a model with that init."""
    module_path = type(model).__module__
    for folder, prefix, name in _TRANSFORMERS_FAMILIES:
        if module_path.startswith(f"transformers.models.{folder}.") and type(model).__name__.startswith(prefix):
            return name
    return None


def family(model: nn.Module) -> str | None:
    """The model family ``model`` is, from its own class and module names; None if it is none of them.

    - ``gpt2``, ``llama``, ``bert``: the model's class is one of transformers' classes of that family
      (``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``BertForMaskedLM``, ...) or of a model that transformers
      initialises the same way (``llama``: Mistral, Qwen2; ``bert``: RoBERTa); ``gpt2`` also when the
      model has GPT-2's module names: its own ``wte`` and ``wpe`` embeddings (children of the model
      or of its ``transformer``) and ``c_attn``, ``c_fc`` and ``c_proj`` layers (nanoGPT; Radford et
      al. 2019), and is not a transformers model of another family;
    - ``vit_timm``: the model's class is named ``VisionTransformer`` and it has timm's names: a
      ``patch_embed`` module, a ``pos_embed`` or ``cls_token`` parameter and packed ``qkv`` projections
      (torchvision's ViT, with other names and ``nn.MultiheadAttention``, is not);
    - ``resnet``: the model's class is named ``ResNet`` and it holds ``Bottleneck`` or ``BasicBlock``
      modules (torchvision's ResNet and ResNeXt).

    Only the model's own class counts, never a module it holds: a wrapper that adds layers of its own
    is not the family, and the recipe would reach those layers too.
    """
    found = _from_transformers(model)
    if found is not None:
        return found
    classes = {type(m).__name__ for m in model.modules()}
    names = {name.rpartition(".")[2] for name, _ in model.named_modules()}
    own = type(model).__name__
    # GPT-2's embeddings are the model's own: children of the model or of its ``transformer`` (nanoGPT)
    stem = getattr(model, "transformer", model)
    embeddings = {name for name, _ in stem.named_children()} if isinstance(stem, nn.Module) else set()
    gpt2_names = _GPT2_NAMES <= names and {"wte", "wpe"} <= embeddings
    if gpt2_names and not type(model).__module__.startswith("transformers."):
        return "gpt2"
    timm_names = "qkv" in names and isinstance(getattr(model, "patch_embed", None), nn.Module) and any(
        isinstance(getattr(model, attr, None), nn.Parameter) for attr in ("pos_embed", "cls_token")
    )
    if own == "VisionTransformer" and timm_names:
        return "vit_timm"
    if own == "ResNet" and classes & {"Bottleneck", "BasicBlock"}:
        return "resnet"
    return None

def traits(model: nn.Module, example_input: Any = None, *, width_scaling: bool = False) -> Traits:
    """The structure :func:`recommend` reads: layers, activations, norms, residual branches, attention, depth."""
    modules = dict(model.named_modules())
    flow = analyze(model, example_input, need_residual=True)
    names: list[str] = []
    found = [_activation_name(a) for a in flow.activations.values()]
    found += [_activation_name(m) for m in modules.values() if type(m).__module__ == "torch.nn.modules.activation"]
    for name in found:
        if name is not None and name not in names and name != "multiheadattention":
            names.append(name)
    attention = any(_is_attention(m) for m in modules.values())
    return Traits(
        weight_layers=sum(is_weight_layer(m) for m in modules.values()),
        activations=tuple(names),
        norms=any(_is_norm(m) for m in modules.values()),
        residual=bool(flow.residual_branches),
        attention=attention,
        norm_first=_norm_first(model, modules) if attention else None,
        recurrent=any(isinstance(m, _RECURRENT) for m in modules.values()),
        lstm=any(isinstance(m, nn.LSTM | nn.LSTMCell) for m in modules.values()),
        width_scaling=width_scaling,
        family=family(model),
    )


def recommend(model: nn.Module, example_input: Any = None, *, width_scaling: bool = False) -> Recommendation:
    """The plan for ``model``, from its structure: the first row of :data:`ADVICE` that matches.

    A model of a recognised family (:func:`family`: GPT-2, LLaMA, BERT, a
    timm-style ViT, a torchvision-style ResNet) gets that family's ready plan;
    any other model the generic row its structure answers.
    ``example_input`` lets the data flow be recorded where torch.fx cannot
    trace the model (residual branches are read from the flow);
    ``width_scaling=True`` asks for the plan of a width-scaling experiment
    (muP). docs/guide.md gives the reason for each plan, with its paper.

    >>> import torch, initlab as il
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    >>> il.recommend(net).plan
    'glorot_normal'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(width_scaling, bool):
        raise TypeError(f"width_scaling must be True or False, got {width_scaling!r}")
    found = traits(model, example_input, width_scaling=width_scaling)
    advice = next(row for row in ADVICE if row.matches(found))
    return Recommendation(advice, found)
