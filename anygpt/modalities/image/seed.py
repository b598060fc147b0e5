"""SEED-2 image tokenizer (seed-tokenizer-2, the one AnyGPT uses): 32 causal Q-Former tokens per 224x224 image.

Encoder: EVA ViT-g/14 -> LayerNorm -> BLIP-2 Q-Former whose 32 queries attend causally to each other and cross-attend
to the image every second layer -> Linear-Tanh-Linear to 32-d -> nearest entry of an 8192 x 32 codebook.
Decoder side: codebook entry -> Linear-Tanh-Linear to 768-d -> + positions -> 4 ViT blocks -> 768-256-128-32 (ReLU,
no bias) -> 1024-d image embedding in the space of CLIP ViT-H/14, which Stable Diffusion 2.1 unCLIP turns into pixels
(`anygpt.modalities.image.unclip`).

Built from hyper-parameters only (nothing is downloaded); `from_pretrained` reads the release's ``seed_quantizer.pt``
and BLIP-2's ``eva_vit_g.pth`` with their original key names. Reading them is non-strict like the original (keys of
branches the tokenizer does not use are reported and ignored), but every weight the forward pass uses must be present.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.media import IMAGE_PREPROCESSING
from anygpt.modalities.codec import Codec
from anygpt.modalities.image.unclip import UnCLIPDecoder
from anygpt.modalities.spec import SpanStructure

log = logging.getLogger(__name__)
UNCLIP_OPTIONS = ("num_inference_steps", "guidance_scale", "noise_level", "height", "width", "seed")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# -- EVA ViT-g/14 (BLIP-2's vision encoder: pre-norm blocks, q/v biases, no final norm) --------------------------------
class Attention(nn.Module):
    """Self-attention with a fused qkv projection; EVA's (``qv_bias``) has separate q and v biases and none for k."""

    def __init__(self, dim: int, heads: int, qv_bias: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=not qv_bias)
        if qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        bias = self.qkv.bias
        if bias is None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm ViT block: EVA's (``qv_bias``) and the decoder side's (qkv with bias)."""

    def __init__(self, dim: int, heads: int, hidden: int, qv_bias: bool = False) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = Attention(dim, heads, qv_bias), MLP(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EVAViT(nn.Module):
    def __init__(self, image_size: int, patch_size: int, width: int, depth: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2 + 1, width))
        self.blocks = nn.ModuleList(Block(width, heads, hidden, qv_bias=True) for _ in range(depth))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x


# -- Q-Former (BERT-base layers, post-norm; queries only, causal among themselves) -------------------------------------
class QFormerAttention(nn.Module):
    def __init__(self, dim: int, heads: int, kv_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k, self.v = nn.Linear(kv_dim or dim, dim), nn.Linear(kv_dim or dim, dim)
        self.o = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        b, n, d = x.shape
        context = x if context is None else context

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(context)), heads(self.v(context)),
                                             is_causal=causal)
        return self.o(out.transpose(1, 2).reshape(b, n, d))


class QFormerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, vision_dim: int, cross: bool) -> None:
        super().__init__()
        self.self_attn, self.self_norm = QFormerAttention(dim, heads), nn.LayerNorm(dim, eps=1e-12)
        self.cross_attn = QFormerAttention(dim, heads, kv_dim=vision_dim) if cross else None
        self.cross_norm = nn.LayerNorm(dim, eps=1e-12) if cross else None
        self.fc1, self.fc2, self.ffn_norm = nn.Linear(dim, hidden), nn.Linear(hidden, dim), nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.self_norm(x + self.self_attn(x, causal=True))
        if self.cross_attn is not None:
            x = self.cross_norm(x + self.cross_attn(x, context=image))
        return self.ffn_norm(x + self.fc2(F.gelu(self.fc1(x))))


class QFormer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, hidden: int, vision_dim: int, cross_every: int) -> None:
        super().__init__()
        self.embed_norm = nn.LayerNorm(dim, eps=1e-12)
        self.layers = nn.ModuleList(QFormerLayer(dim, heads, hidden, vision_dim, cross=i % cross_every == 0)
                                    for i in range(depth))

    def forward(self, queries: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(queries)
        for layer in self.layers:
            x = layer(x, image)
        return x


# -- The tokenizer -----------------------------------------------------------------------------------------------------
class SEEDImageTokenizer(Codec):
    """SEED-2: images -> 32 codes in [0, 8192) -> 1024-d unCLIP image embeddings -> pixels.

    `encode` takes images ``[3, 224, 224]`` in [0, 1] and applies CLIP's normalisation itself. `decode` runs both
    stages: `embed_codes` and the attached unCLIP pipeline (`attach_unclip`); without one it says what to attach.
    Defaults are the release's sizes; tests build it narrow. ``vit_depth`` is 39: BLIP-2 drops the 40th block of EVA
    ViT-g. ``preprocess`` (`anygpt.media.IMAGE_PREPROCESSING`, saved with the sizes) is ``release`` by default: the
    released weights were trained on the original's ``convert("RGB")``; ``anygpt`` for one trained on anygpt's reader.
    """

    modality = "image"

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 14,
        vit_width: int = 1408,
        vit_depth: int = 39,
        vit_heads: int = 16,
        vit_hidden: int = 6144,
        qformer_width: int = 768,
        qformer_depth: int = 12,
        qformer_heads: int = 12,
        qformer_hidden: int = 3072,
        cross_attention_freq: int = 2,
        num_queries: int = 32,
        codebook_dim: int = 32,
        n_embed: int = 8192,
        decode_depth: int = 4,
        decode_heads: int = 12,
        down_dims: Sequence[int] = (256, 128, 32),
        embed_dim: int = 1024,
        preprocess: str = "release",
    ) -> None:
        super().__init__()
        if preprocess not in IMAGE_PREPROCESSING:
            raise ValueError(f"SEEDImageTokenizer: unknown preprocess {preprocess!r}; choose {IMAGE_PREPROCESSING}")
        self.image_preprocess = preprocess
        self.image_size, self.num_queries, self.n_embed = image_size, num_queries, n_embed
        self.visual = EVAViT(image_size, patch_size, vit_width, vit_depth, vit_heads, vit_hidden)
        self.ln_vision = nn.LayerNorm(vit_width)
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, qformer_width))
        self.qformer = QFormer(qformer_width, qformer_depth, qformer_heads, qformer_hidden, vit_width,
                               cross_attention_freq)
        self.encode_task_layer = nn.Sequential(nn.Linear(qformer_width, qformer_width), nn.Tanh(),
                                               nn.Linear(qformer_width, codebook_dim))
        self.codebook = nn.Embedding(n_embed, codebook_dim)
        self.decode_task_layer = nn.Sequential(nn.Linear(codebook_dim, codebook_dim), nn.Tanh(),
                                               nn.Linear(codebook_dim, qformer_width))
        self.pos_embed_image = nn.Parameter(torch.zeros(1, num_queries, qformer_width))
        self.blocks_image = nn.ModuleList(Block(qformer_width, decode_heads, qformer_width * 4)
                                          for _ in range(decode_depth))
        dims = (qformer_width, *down_dims)
        down: list[nn.Module] = []
        for i in range(len(down_dims)):
            down += [nn.Linear(dims[i], dims[i + 1], bias=False)] + ([nn.ReLU()] if i + 1 < len(down_dims) else [])
        self.image_down = nn.Sequential(*down)
        self.distill_image_proj = nn.Linear(num_queries * down_dims[-1], embed_dim)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(3, 1, 1), persistent=False)
        self.unclip = None  # an UnCLIPDecoder, attached by attach_unclip()
        self.load_report: dict[str, list[str]] = {"missing": [], "unexpected": []}

    @property
    def codebook_size(self) -> int:
        return self.n_embed

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=self.num_queries)

    # -- tokens ----------------------------------------------------------------------------------------------------
    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codebook entry (Euclidean) of each ``[..., codebook_dim]`` vector."""
        flat = z.reshape(-1, z.shape[-1])
        e = self.codebook.weight
        dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        return dist.argmin(1).reshape(z.shape[:-1])

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, 224, 224]`` -> codes ``[B, 32]``."""
        image = self.ln_vision(self.visual(images))
        queries = self.qformer(self.query_tokens.expand(images.shape[0], -1, -1), image)
        return self.quantize(self.encode_task_layer(queries))

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, 32]`` -> unCLIP image embeddings ``[B, 1024]``."""
        x = self.decode_task_layer(self.codebook(codes)) + self.pos_embed_image
        for block in self.blocks_image:
            x = block(x)
        return self.distill_image_proj(self.image_down(x).flatten(1))

    @torch.inference_mode()
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if not items:
            return []
        batch = torch.stack(list(items)).to(self.device, torch.float32)
        size = self.image_size
        if batch.shape[1:] != (3, size, size):
            raise ValueError(f"SEED expects images [3, {size}, {size}] in [0, 1] (Modality.read resizes files), got "
                             f"{tuple(batch.shape[1:])}")
        batch = ((batch - self.mean) / self.std).to(self.dtype)  # SEED's preprocessing: CLIP mean/std
        return list(self.encode_images(batch).unbind(0))

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor], **context: Any) -> list[torch.Tensor]:
        """Codes ``[32]`` -> images ``[3, H, W]`` in [0, 1] through the attached unCLIP pipeline.

        ``context`` may set the pipeline's ``num_inference_steps``, ``guidance_scale``, ``noise_level``, ``height``,
        ``width`` and ``seed`` (SEED's settings by default); other keys are ignored.
        """
        if self.unclip is None:
            raise RuntimeError("SEED codes decode to unCLIP image embeddings; turning them into pixels needs a Stable "
                               "Diffusion 2.1 unCLIP pipeline: attach_unclip(<local stable-diffusion-2-1-unclip "
                               "folder>). embed_codes() gives the embeddings alone.")
        options = {k: v for k, v in context.items() if k in UNCLIP_OPTIONS}
        return self.unclip(self.decode_embeddings(codes), **options)

    def decode_embeddings(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Codes ``[32]`` -> unCLIP image embeddings ``[1024]`` (the first decoding stage)."""
        if not codes:
            return []
        n = self.num_queries
        batch = torch.stack([c.reshape(-1).long() for c in codes]).to(self.device)
        if batch.shape[1] != n or batch.min() < 0 or batch.max() >= self.codebook_size:
            raise ValueError(f"A SEED image is exactly {n} codes in [0, {self.codebook_size}), got shape "
                             f"{tuple(batch.shape)} range [{int(batch.min())}, {int(batch.max())}]")
        return list(self.embed_codes(batch).float().unbind(0))

    def attach_unclip(self, pipeline_dir: str | Path, **kwargs: Any) -> None:
        """Load a local Stable Diffusion 2.1 unCLIP pipeline folder, `decode`'s second stage (``anygpt[diffusion]``)."""
        self.unclip = UnCLIPDecoder.from_pretrained(pipeline_dir, **kwargs)

    # -- release checkpoints ---------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, eva_vit: str | Path | None = None,
                        trust_code: bool = False, **overrides: Any) -> SEEDImageTokenizer:
        """Load ``seed_quantizer.pt`` (+ BLIP-2's ``eva_vit_g.pth`` when the quantizer file lacks the ViT).

        ``path`` may be the file or the AILab-CVC/seed-tokenizer-2 folder holding it; ``eva_vit_g.pth`` is looked for
        beside it and one folder up when not given. Sizes not in ``overrides`` are read from the weights
        (`seed_config_from_state`). A `save_pretrained` directory is loaded as usual. Raises `KeyError` naming the
        files when a weight the forward pass uses is missing; keys of unused branches (BERT text layers, the
        ``recon_s`` blocks, the 40th ViT block, ...) are listed in ``model.load_report["unexpected"]`` and logged.
        """
        if path is None:
            raise TypeError("SEEDImageTokenizer ships no default weights; give seed_quantizer.pt (+ eva_vit)")
        path = Path(path)
        if path.is_dir() and (path / "seed_quantizer.pt").exists():  # AILab-CVC/seed-tokenizer-2 as downloaded
            path = path / "seed_quantizer.pt"
        if path.is_dir():
            return super().from_pretrained(path, trust_code=trust_code, **overrides)
        if eva_vit is None:  # BLIP-2's eva_vit_g.pth beside the quantizer or one folder up
            eva_vit = next((p for p in (path.parent / EVA_FILE, path.parent.parent / EVA_FILE) if p.exists()), None)
        state = dict(_torch_load(path))
        sources = [str(path)]
        if eva_vit is not None:
            merge_eva_vit(state, _torch_load(Path(eva_vit)), str(path), str(eva_vit))
            sources.append(str(eva_vit))
        try:
            overrides = {**seed_config_from_state(state), **overrides}
        except (KeyError, ValueError) as err:
            log.warning("%s: sizes not readable from the weights (%s); using the release's", " + ".join(sources), err)
        model = cls(**overrides)
        model.load_seed_state_dict(state, source=" + ".join(sources))
        return model.eval()

    def load_seed_state_dict(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        own = self.state_dict()
        converted: dict[str, torch.Tensor] = {}
        unexpected: list[str] = []
        for key, value in state.items():
            ours = seed_key_to_ours(key)
            if ours in own:
                if value.shape != own[ours].shape:
                    raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, the model expects "
                                     f"{tuple(own[ours].shape)} for {ours}; check the configuration.")
                converted[ours] = value
            else:
                unexpected.append(key)
        missing = sorted(set(own) - set(converted))
        self.load_report = {"missing": missing, "unexpected": sorted(unexpected)}
        if missing:
            hint = (" (the EVA ViT weights come separately: pass eva_vit=eva_vit_g.pth)"
                    if any(k.startswith("visual.") for k in missing) else "")
            raise KeyError(f"{source} lacks {len(missing)} weights the SEED tokenizer uses, e.g. {missing[:5]}{hint}")
        if unexpected:
            log.warning("%s: ignored %d keys of branches the tokenizer does not use, e.g. %s", source,
                        len(unexpected), unexpected[:3])
        self.load_state_dict(converted, strict=True)


# Q-Former parts of the original (BERT names, under ``Qformer.bert.encoder.layer.N.``) -> ours (``qformer.layers.N.``)
_QFORMER_PARTS = {
    "attention.self.query": "self_attn.q", "attention.self.key": "self_attn.k", "attention.self.value": "self_attn.v",
    "attention.output.dense": "self_attn.o", "attention.output.LayerNorm": "self_norm",
    "crossattention.self.query": "cross_attn.q", "crossattention.self.key": "cross_attn.k",
    "crossattention.self.value": "cross_attn.v", "crossattention.output.dense": "cross_attn.o",
    "crossattention.output.LayerNorm": "cross_norm", "intermediate_query.dense": "fc1", "output_query.dense": "fc2",
    "output_query.LayerNorm": "ffn_norm",
}
# Original name -> ours. Order matters: the first matching rule wins.
_SEED_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"^visual_encoder\.patch_embed\.proj\.(weight|bias)$", r"visual.patch_embed.\1"),
        (r"^visual_encoder\.(cls_token|pos_embed)$", r"visual.\1"),
        (r"^visual_encoder\.blocks\.(\d+)\.(.*)$", r"visual.blocks.\1.\2"),
        (r"^quantize\.embedding\.weight$", "codebook.weight"),
        (r"^Qformer\.bert\.embeddings\.LayerNorm\.(weight|bias)$", r"qformer.embed_norm.\1"),
        *((rf"^Qformer\.bert\.encoder\.layer\.(\d+)\.{re.escape(theirs)}\.(.*)$", rf"qformer.layers.\1.{ours}.\2")
          for theirs, ours in _QFORMER_PARTS.items()),
    ]
]


def merge_eva_vit(state: dict[str, torch.Tensor], vit_state: dict[str, torch.Tensor], quantizer: str,
                  vit_file: str) -> None:
    """Add BLIP-2's EVA ViT weights to a ``seed_quantizer.pt`` state as the release does (ViT file first, quantizer
    file last: the quantizer file's own ``visual_encoder.*`` weights win), warning where the two files disagree."""
    differing = []
    for key, value in vit_state.items():  # eva_vit_g.pth has no prefix; seed_quantizer.pt uses visual_encoder.
        ours = key if key.startswith("visual_encoder.") else f"visual_encoder.{key}"
        if ours not in state:
            state[ours] = value
        elif state[ours].shape != value.shape or not torch.equal(state[ours], value.to(state[ours].dtype)):
            differing.append(ours)
    if differing:
        log.warning("%s and %s disagree on %d ViT weights (e.g. %s); the quantizer file's win, as in the release",
                    quantizer, vit_file, len(differing), differing[:3])


def seed_key_to_ours(key: str) -> str:
    """A key of ``seed_quantizer.pt`` / ``eva_vit_g.pth`` (prefixed ``visual_encoder.``) -> our parameter name.

    Keys whose names already match (``ln_vision``, ``query_tokens``, ``encode_task_layer``, ``decode_task_layer``,
    ``pos_embed_image``, ``blocks_image``, ``image_down``, ``distill_image_proj``) pass through unchanged.
    """
    for pattern, replacement in _SEED_RULES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


EVA_FILE = "eva_vit_g.pth"
# Head widths of the release (EVA ViT-g: 1408 / 16; BERT-base Q-Former and the decoder blocks: 768 / 12): head counts
# are not in the shapes.
EVA_HEAD_DIM, QFORMER_HEAD_DIM = 88, 64


def seed_config_from_state(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """`SEEDImageTokenizer` sizes read from the release's key names and shapes (``seed_quantizer.pt`` merged with the
    ``visual_encoder.``-prefixed EVA weights). The ViT depth is one less than the EVA blocks present: BLIP-2 drops
    the last of eva_vit_g.pth's 40."""
    config: dict[str, Any] = {}

    def count(prefix: str) -> int:
        return len({k[len(prefix):].split(".", 1)[0] for k in state if k.startswith(prefix)})

    if "visual_encoder.patch_embed.proj.weight" in state:
        width, _, patch, _ = state["visual_encoder.patch_embed.proj.weight"].shape
        positions = state["visual_encoder.pos_embed"].shape[1] - 1
        if width % EVA_HEAD_DIM:
            raise ValueError(f"EVA width {width} is not a multiple of the release's head width {EVA_HEAD_DIM}")
        config.update(image_size=int(round(positions ** 0.5)) * int(patch), patch_size=int(patch), vit_width=int(width),
                      vit_depth=count("visual_encoder.blocks.") - 1, vit_heads=int(width) // EVA_HEAD_DIM,
                      vit_hidden=int(state["visual_encoder.blocks.0.mlp.fc1.weight"].shape[0]))
    _, queries, qwidth = state["query_tokens"].shape
    if qwidth % QFORMER_HEAD_DIM:
        raise ValueError(f"Q-Former width {qwidth} is not a multiple of the release's head width {QFORMER_HEAD_DIM}")
    layer = "Qformer.bert.encoder.layer."
    crossed = sorted(int(k[len(layer):].split(".", 1)[0]) for k in state
                     if k.startswith(layer) and ".crossattention.self.query.weight" in k)
    n_embed, codebook_dim = state["quantize.embedding.weight"].shape
    downs = [state[f"image_down.{i}.weight"].shape[0] for i in range(0, 2 * 8, 2) if f"image_down.{i}.weight" in state]
    config.update(qformer_width=int(qwidth), num_queries=int(queries), qformer_depth=count(layer),
                  qformer_heads=int(qwidth) // QFORMER_HEAD_DIM,
                  qformer_hidden=int(state[f"{layer}0.intermediate_query.dense.weight"].shape[0]),
                  cross_attention_freq=crossed[1] - crossed[0] if len(crossed) > 1 else max(1, count(layer)),
                  codebook_dim=int(codebook_dim), n_embed=int(n_embed), decode_depth=count("blocks_image."),
                  decode_heads=int(qwidth) // QFORMER_HEAD_DIM, down_dims=tuple(int(d) for d in downs),
                  embed_dim=int(state["distill_image_proj.weight"].shape[0]))
    return config


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise FileNotFoundError(f"SEED checkpoint {path} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict (got {type(state).__name__}).")
    return state
