"""No false alarms: healthy reference models get no warning or error from the doctor."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.diagnosis import doctor
from initlab.plan import init_model


def _alarms(model: nn.Module, batch: torch.Tensor | None = None) -> list[str]:
    report = doctor(model, batch)
    return [f"[{f.severity}] {f.code}: {f.message}" for f in report.findings if f.severity in ("warning", "error")]


def torch_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def torch_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10),
    )


def torch_autoencoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(), nn.ConvTranspose2d(16, 3, 4, stride=2, padding=1),
    )


class TorchSequenceModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(100, 32, padding_idx=0)
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.norm = nn.LayerNorm(64)
        self.head = nn.Linear(64, 5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(self.embedding(tokens))
        return self.head(self.norm(output[:, -1]))


def depthwise_separable() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


TORCH_DEFAULTS = {
    "mlp": torch_mlp,
    "cnn": torch_cnn,
    "autoencoder": torch_autoencoder,
    "sequence": TorchSequenceModel,
    "depthwise_separable": depthwise_separable,
}


@pytest.mark.parametrize("name", sorted(TORCH_DEFAULTS))
def test_torch_defaults_raise_no_alarm(name: str) -> None:
    torch.manual_seed(0)
    assert _alarms(TORCH_DEFAULTS[name]()) == []


def deep_mlp() -> nn.Module:
    layers: list[nn.Module] = []
    for width_in in (64, 256, 256, 256, 256, 256, 256):
        layers += [nn.Linear(width_in, 256), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def deep_cnn() -> nn.Module:
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 32, 64, 64, 64, 64):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))


@pytest.mark.parametrize("build", [deep_mlp, deep_cnn], ids=["mlp", "cnn"])
def test_he_plan_raises_no_alarm_with_or_without_a_batch(build) -> None:
    torch.manual_seed(0)
    model = build()
    init_model(model, plan="he", seed=0)
    assert _alarms(model) == []
    batch = torch.randn(64, 64) if build is deep_mlp else torch.randn(16, 3, 16, 16)
    assert _alarms(model, batch) == []


# -- a ViT with the original (JAX) init and a ResNet with torchvision's ----------------------------------
class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """Dosovitskiy et al. 2021: Dense kernels Xavier-uniform, MLP biases N(0, 1e-6), head zero, patch embedding LeCun normal."""

    def __init__(self, dim: int = 64, depth: int = 4, heads: int = 4, patch: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (32 // patch) ** 2, dim) * 0.02)
        self.blocks = nn.ModuleList([ViTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if name.endswith(("fc1", "fc2")):
                    nn.init.normal_(module.bias, std=1e-6)
                else:
                    nn.init.zeros_(module.bias)
        fan_in = 3 * patch * patch
        nn.init.trunc_normal_(self.patch_embed.weight, std=math.sqrt(1 / fan_in) / 0.87962566103423978,
                              a=-2 * math.sqrt(1 / fan_in) / 0.87962566103423978,
                              b=2 * math.sqrt(1 / fan_in) / 0.87962566103423978)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or channels_in != channels:
            self.downsample = nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)


class ResNet(nn.Module):
    """He et al. 2016 with torchvision's init: kaiming_normal_(fan_out, relu) convs, BN 1/0, last BN of each block 0."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1))
        self.fc = nn.Linear(32, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("build", [ViT, ResNet], ids=["vit", "resnet"])
def test_vit_and_resnet_with_their_standard_init_raise_no_alarm(build) -> None:
    torch.manual_seed(0)
    model = build()
    assert _alarms(model) == []
    assert _alarms(model, torch.randn(8, 3, 32, 32)) == []


# -- Hugging Face tiny configs after their own _init_weights ----------------------------------------------
def _hf_models():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return {
        "gpt2": lambda: transformers.GPT2LMHeadModel(
            transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=128, n_positions=64)
        ),
        "bert": lambda: transformers.BertForSequenceClassification(
            transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                    intermediate_size=128, vocab_size=128, max_position_embeddings=64)
        ),
        "llama": lambda: transformers.LlamaForCausalLM(
            transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=128, max_position_embeddings=64)
        ),
    }


@pytest.mark.parametrize("name", ["gpt2", "bert", "llama"])
def test_hugging_face_tiny_configs_raise_no_alarm(name: str) -> None:
    torch.manual_seed(0)
    model = _hf_models()[name]()
    assert _alarms(model) == []
    tokens = torch.randint(0, 128, (2, 16))
    assert _alarms(model, tokens) == []
