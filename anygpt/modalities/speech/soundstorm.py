"""SoundStorm: a bidirectional Conformer that fills in RVQ levels 2..8 from the semantic level 1 (MaskGIT decoding).

The module tree mirrors the checkpoint AnyGPT releases (``fnlp/AnyGPT-speech-modules/soundstorm/
speechtokenizer_soundstorm_mls.pt``, trained with ZhangXInFD/soundstorm-speechtokenizer on lucidrains' Conformer),
so its state dict loads without renaming: ``semantic_token_emb``, ``net.code_embeds``,
``net.conformer.layers.N.{ff1,attn,conv,ff2,post_norm}``, ``net.heads.0``, ``net.to_logits.{0,2}``. The odd nestings
(``ff1.fn.fn.net.0``) come from that layout: a half-step ``Scale`` around a ``PreNorm`` around the feed-forward.

Sequence layout: frames ``N`` x acoustic levels ``Q`` (7 for SpeechTokenizer). Each frame's input is the sum of one
embedding per level (id ``codebook_size`` = mask/pad) plus the embedding of its semantic token; the Conformer runs over
frames, and one head per level predicts that level's code.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.modalities.pretrained import Pretrained

# -- Conformer ---------------------------------------------------------------------------------------------------------


class Scale(nn.Module):
    def __init__(self, scale: float, fn: nn.Module) -> None:
        super().__init__()
        self.scale, self.fn = scale, fn

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.fn(x, **kwargs) * self.scale


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult), nn.SiLU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions over the full head width; ``mask`` marks valid keys."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dropout = heads, dropout
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, rotary: torch.Tensor | None = None,
                ) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (self.to_q(x), *self.to_kv(x).chunk(2, dim=-1))
        q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        if rotary is not None:
            cos, sin = rotary.cos(), rotary.sin()
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        attn_mask = mask[:, None, None, :] if mask is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Transpose(nn.Module):
    """[B, N, C] <-> [B, C, N] (a parameter-free slot in the conv module's Sequential)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class DepthWiseConv1d(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.padding = (kernel_size // 2, kernel_size // 2 - (kernel_size + 1) % 2)  # "same" for odd and even
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class ChanLayerNorm(nn.Module):
    """LayerNorm over channels of ``[B, C, N]`` with a gain only."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-6 if x.dtype == torch.float32 else 1e-4
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) * var.clamp(min=eps).rsqrt() * self.gamma


class GLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, gate = x.chunk(2, dim=1)
        return out * gate.sigmoid()


class ConvModule(nn.Module):
    def __init__(self, dim: int, expansion: int = 2, kernel_size: int = 31, dropout: float = 0.0) -> None:
        super().__init__()
        inner = dim * expansion
        self.net = nn.Sequential(nn.LayerNorm(dim), Transpose(), nn.Conv1d(dim, 2 * inner, 1), GLU(),
                                 DepthWiseConv1d(inner, kernel_size), nn.SiLU(), ChanLayerNorm(inner),
                                 nn.Conv1d(inner, dim, 1), Transpose(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConformerBlock(nn.Module):
    """Half-step FF, attention, convolution, half-step FF, final LayerNorm (Gulati et al. 2020)."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: int = 4, conv_expansion: int = 2,
                 conv_kernel_size: int = 31, dropout: float = 0.0) -> None:
        super().__init__()
        self.ff1 = Scale(0.5, PreNorm(dim, FeedForward(dim, ff_mult, dropout)))
        self.attn = PreNorm(dim, Attention(dim, heads, dim_head, dropout))
        self.conv = ConvModule(dim, conv_expansion, conv_kernel_size, dropout)
        self.ff2 = Scale(0.5, PreNorm(dim, FeedForward(dim, ff_mult, dropout)))
        self.post_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, rotary: torch.Tensor | None) -> torch.Tensor:
        x = self.ff1(x) + x
        x = self.attn(x, mask=mask, rotary=rotary) + x
        x = self.conv(x) + x
        x = self.ff2(x) + x
        return self.post_norm(x)


class Conformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, ff_mult: int = 4, conv_expansion: int = 2,
                 conv_kernel_size: int = 31, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim, self.dim_head = dim, dim_head
        self.layers = nn.ModuleList(ConformerBlock(dim, heads, dim_head, ff_mult, conv_expansion, conv_kernel_size,
                                                   dropout) for _ in range(depth))

    def rotary(self, n: int, device: torch.device) -> torch.Tensor:
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.dim_head, 2, device=device).float() / self.dim_head))
        freqs = torch.outer(torch.arange(n, device=device).float(), inv_freq)
        return torch.cat((freqs, freqs), dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        rotary = self.rotary(x.shape[1], x.device)
        for block in self.layers:
            x = block(x, mask, rotary)
        return x


class PerLevelLinear(nn.Module):
    """One ``dim -> codebook_size`` projection per level: weight ``[Q, dim, L]``, bias ``[Q, L]`` (einops EinMix)."""

    def __init__(self, levels: int, dim: int, out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(levels, dim, out) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(levels, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, Q, D] -> [B, N, Q, L]
        return torch.einsum("bnqd,qdl->bnql", x, self.weight) + self.bias


class SoundStormNet(nn.Module):
    """Embeds ``[B, N, Q]`` codes (summed over levels), adds the condition, runs the Conformer, predicts every level."""

    def __init__(self, codebook_size: int, num_quantizers: int, conformer: Conformer) -> None:
        super().__init__()
        dim = conformer.dim
        self.codebook_size, self.num_quantizers = codebook_size, num_quantizers
        self.conformer = conformer
        self.code_embeds = nn.Embedding((codebook_size + 1) * num_quantizers, dim)  # +1: the mask/pad id
        self.heads = nn.Sequential(nn.Linear(dim, dim * num_quantizers), nn.Unflatten(-1, (num_quantizers, -1)))
        self.to_logits = nn.Sequential(nn.LayerNorm(dim), nn.Identity(),
                                       PerLevelLinear(num_quantizers, dim, codebook_size))
        self.register_buffer("offsets", torch.arange(num_quantizers) * (codebook_size + 1), persistent=False)

    def forward(self, codes: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """codes ``[B, N, Q]`` (``codebook_size`` = masked), cond ``[B, N, D]``, mask ``[B, N]`` valid -> logits
        ``[B, N, Q, codebook_size]``."""
        x = self.code_embeds(codes + self.offsets).sum(dim=2) + cond
        return self.to_logits(self.heads(self.conformer(x, mask=mask)))


# -- SoundStorm --------------------------------------------------------------------------------------------------------


def cosine_schedule(t: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens still masked at time ``t`` in [0, 1] (MaskGIT, Chang et al. 2022)."""
    return torch.cos(t * math.pi / 2)


class SoundStorm(Pretrained):
    """Semantic tokens (+ optional prompt) -> all acoustic levels. Trained by
    `anygpt.modalities.speech.training.SoundStormTrainer`; saved with ``save_pretrained`` (or the release ``.pt``)."""

    def __init__(self, codebook_size: int = 1024, num_quantizers: int = 7, num_semantic_tokens: int = 1024,
                 dim: int = 1024, depth: int = 12, heads: int = 8, dim_head: int = 128, ff_mult: int = 4,
                 conv_kernel_size: int = 31, dropout: float = 0.0) -> None:
        super().__init__()
        conformer = Conformer(dim, depth, heads, dim_head, ff_mult, conv_kernel_size=conv_kernel_size, dropout=dropout)
        self.net = SoundStormNet(codebook_size, num_quantizers, conformer)
        self.semantic_token_emb = nn.Embedding(num_semantic_tokens, dim)
        self.mask_id = codebook_size
        self.num_quantizers = num_quantizers

    def logits(self, acoustic: torch.Tensor, semantic: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(acoustic, self.semantic_token_emb(semantic), mask)

    def loss(self, acoustic: torch.Tensor, semantic: torch.Tensor, lengths: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """SoundStorm's training objective on ``acoustic [B, N, Q]`` given ``semantic [B, N]``.

        A random prompt split ``t`` keeps frames ``< t`` intact at every level; a random level ``q`` is masked at a
        cosine-scheduled fraction of the frames ``>= t``; levels above ``q`` are masked there; cross-entropy on the
        masked level-``q`` positions. Returns (loss, accuracy of the argmax there).
        """
        b, n, q_levels = acoustic.shape
        device = acoustic.device
        lengths = torch.full((b,), n, device=device) if lengths is None else lengths
        valid = torch.arange(n, device=device)[None] < lengths[:, None]
        t = random.randrange(0, max(1, int(lengths.min()) - 1))
        q = random.randrange(0, q_levels)
        candidates = valid & (torch.arange(n, device=device)[None] >= t)
        prob = cosine_schedule(torch.rand(b, device=device))
        count = (candidates.sum(1) * prob).ceil().clamp(min=1)
        scores = torch.rand(b, n, device=device).masked_fill(~candidates, 2.0)
        ranks = scores.argsort(dim=1).argsort(dim=1)
        masked = (ranks < count[:, None]) & candidates
        inputs = acoustic.clone()
        inputs[..., q] = inputs[..., q].masked_fill(masked, self.mask_id)
        inputs[:, t:, q + 1:] = self.mask_id
        inputs = inputs.masked_fill(~valid[..., None], self.mask_id)
        logits = self.logits(inputs, semantic.masked_fill(~valid, 0), valid)[..., q, :]
        target = acoustic[..., q]
        loss = F.cross_entropy(logits[masked], target[masked])
        accuracy = (logits[masked].argmax(-1) == target[masked]).float().mean()
        return loss, accuracy

    @torch.inference_mode()
    def generate(self, semantic: torch.Tensor, prompt: torch.Tensor | None = None, steps: int = 3,
                 schedule: str = "release", temperature: float = 1.0, top_k_fraction: float = 0.3,
                 greedy_levels_from: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Acoustic levels for ``semantic [B, N]``; returns all levels ``[B, N, 1 + Q]`` (semantic first).

        ``prompt [B, P, 1 + Q]`` (all levels of the target voice): its level 1 is prepended to the condition and its
        acoustic levels are a fixed prefix, so the continuation takes on that voice; without one the sampling picks a
        random voice.

        ``schedule`` names the MaskGIT decoding of level 2:

        - ``"release"`` (default): what AnyGPT's SoundStorm does (``generate(steps, greedy=True, topk_pres=0.7)``,
          REFERENCE.md): ``steps + 1`` passes with cosine mask counts of the whole (prompt + new) length, sampling
          temperature rising from 0 (``i / steps``), logits cut to their top 30%, the positions to re-mask ranked by
          ``1 - p(sampled id)`` over every position and level (prompt positions never re-masked), the last pass
          greedy; then one greedy pass per higher level, each overwriting that level and all above it.
        - ``"annealed"``: ours: ``steps`` passes, temperature falling from ``temperature`` to 0, re-masking the least
          confident level-2 positions only (unfiltered probabilities), sampling from the top ``top_k_fraction``;
          levels from ``greedy_levels_from`` on take one greedy pass each.
        """
        if schedule == "release":
            return self._generate_release(semantic, prompt, steps, generator)
        if schedule != "annealed":
            raise ValueError(f"unknown SoundStorm schedule {schedule!r}: use 'release' or 'annealed'")
        b, n = semantic.shape
        device = semantic.device
        codes, cond, p = self._start(semantic, prompt)
        for q in range(self.num_quantizers):
            if q >= greedy_levels_from or steps <= 1:
                logits = self.logits(codes, cond)[:, p:, q]
                codes[:, p:, q] = logits.argmax(-1)
                continue
            masked = torch.ones(b, n, dtype=torch.bool, device=device)
            for i in range(steps):
                logits = self.logits(codes, cond)[:, p:, q].float()
                tau = temperature * (1 - i / steps)
                sampled = _sample_top_k(logits, tau, top_k_fraction, generator)
                confidence = logits.softmax(-1).gather(-1, sampled[..., None])[..., 0]
                level = codes[:, p:, q]
                level[masked] = sampled[masked]
                remain = int(math.floor(n * cosine_schedule(torch.tensor((i + 1) / steps)).item()))
                if remain <= 0:
                    break
                confidence = confidence.masked_fill(~masked, float("inf"))  # fixed tokens stay fixed
                remask = confidence.argsort(dim=1)[:, :remain]
                masked = torch.zeros_like(masked).scatter_(1, remask, True)
                level[masked] = self.mask_id
                codes[:, p:, q] = level
        return torch.cat([semantic.long()[..., None], codes[:, p:]], dim=-1)

    def _start(self, semantic: torch.Tensor, prompt: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Masked codes ``[B, P + N, Q]`` with the prompt's acoustic levels in front, the condition (the prompt's
        level 1, then ``semantic``) and the prompt length ``P``."""
        p = 0 if prompt is None else prompt.shape[1]
        codes = torch.full((semantic.shape[0], p + semantic.shape[1], self.num_quantizers), self.mask_id,
                           dtype=torch.long, device=semantic.device)
        cond = semantic.long()
        if prompt is not None:
            codes[:, :p] = prompt[..., 1:].long()
            cond = torch.cat([prompt[..., 0].long(), cond], dim=1)
        return codes, cond, p

    def _generate_release(self, semantic: torch.Tensor, prompt: torch.Tensor | None, steps: int,
                          generator: torch.Generator | None) -> torch.Tensor:
        """The release's schedule (see `generate`); its random draws are the same Gumbel noise, from ``generator``."""
        b, device, levels = semantic.shape[0], semantic.device, self.num_quantizers
        codes, cond, p = self._start(semantic, prompt)
        total = codes.shape[1]
        editable = torch.zeros(b, total, levels, dtype=torch.bool, device=device)
        editable[:, p:] = True  # the prompt is never re-masked
        masked = editable.clone()
        times = torch.linspace(0.0, 1.0, steps + 1, device=device)
        counts = (cosine_schedule(times) * total).long()  # tokens to re-mask after each pass, of ALL positions
        for i, count in enumerate(counts.tolist()):
            logits = self.logits(codes, cond).float().reshape(b, total * levels, -1)
            if count == 0:
                sampled = logits.argmax(-1)
            else:
                logits = _release_top_k(logits, 0.7)
                noise = torch.zeros_like(logits).uniform_(0, 1, generator=generator)
                gumbel = -torch.log(-torch.log(noise + 1e-10) + 1e-10)  # the release's log(t + 1e-10)
                sampled = (logits / max(1.0 * i / steps, 1e-10) + gumbel).argmax(-1)
            codes = torch.where(masked, sampled.view(b, total, levels), codes)
            if count == 0:
                continue
            scores = (1 - logits.softmax(-1)).gather(2, sampled[..., None])[..., 0]
            ranks = scores.argsort(dim=-1, descending=True).argsort(dim=-1)
            masked = (ranks < count).view(b, total, levels)
            masked[:, :, 1:] = True
            masked &= editable
            codes = codes.masked_fill(masked, self.mask_id)
        for q in range(1, levels):  # one greedy pass each; it rewrites level q and above everywhere, prompt included
            sampled = self.logits(codes, cond).argmax(-1)
            codes[:, :, q:] = sampled[:, :, q:]
        return torch.cat([semantic.long()[..., None], codes[:, p:]], dim=-1)

    # -- checkpoints --------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, trust_code: bool = False, **overrides: Any
                        ) -> SoundStorm:
        """A `save_pretrained` folder, or the release's ``.pt`` state dict (sizes read from its weights; ``overrides``
        win)."""
        if path is not None and Path(path).is_file():
            return cls.from_release(path, **overrides)
        return super().from_pretrained(path, trust_code=trust_code, **overrides)

    @classmethod
    def from_release(cls, checkpoint_path: str | Path, **config: Any) -> SoundStorm:
        """Load AnyGPT's ``speechtokenizer_soundstorm_mls.pt``. Sizes not given in ``config`` are read from the
        weights' shapes (`config_from_state`); the paper's file gives 1024-d, 12 layers, 8 heads of 128."""
        checkpoint_path = Path(checkpoint_path)
        if not checkpoint_path.exists():
            raise FileNotFoundError(f"{checkpoint_path} does not exist: pass the SoundStorm state dict, e.g. "
                                    "fnlp/AnyGPT-speech-modules/soundstorm/speechtokenizer_soundstorm_mls.pt")
        state = _from_anygpt_layout(torch.load(checkpoint_path, map_location="cpu", weights_only=True))
        try:
            config = {**config_from_state(state, config.get("dim_head", 128)), **config}
        except (KeyError, ValueError, IndexError) as err:
            raise KeyError(f"{checkpoint_path} does not look like a SoundStorm state dict ({err})") from None
        model = cls(**config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise KeyError(f"{checkpoint_path} does not match the SoundStorm layout: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
        return model.eval()


def config_from_state(state: dict[str, torch.Tensor], dim_head: int = 128) -> dict[str, int]:
    """`SoundStorm` sizes read from a state dict in our layout. The head count is not in the shapes: it is the
    attention width over ``dim_head`` (128 in the release)."""
    prefix = "net.conformer.layers."
    depth = 1 + max(int(k[len(prefix):].split(".", 1)[0]) for k in state if k.startswith(prefix))
    levels, dim, codebook = state["net.to_logits.2.weight"].shape
    inner = state[f"{prefix}0.attn.fn.to_q.weight"].shape[0]
    if inner % dim_head:
        raise ValueError(f"attention width {inner} is not a multiple of dim_head {dim_head}")
    return {"codebook_size": int(codebook), "num_quantizers": int(levels), "dim": int(dim), "depth": depth,
            "num_semantic_tokens": int(state["semantic_token_emb.weight"].shape[0]), "heads": inner // dim_head,
            "dim_head": dim_head, "ff_mult": int(state[f"{prefix}0.ff1.fn.fn.net.0.weight"].shape[0]) // int(dim),
            "conv_kernel_size": int(state[f"{prefix}0.conv.net.4.conv.weight"].shape[-1])}


# AnyGPT's copy of soundstorm.py splits the conv module's Sequential into net1 / ds_conv / net2 (its checkpoint has
# those names); ZhangXInFD/soundstorm-speechtokenizer keeps one Sequential ``net``, the layout of our modules.
_ANYGPT_CONV_KEYS = {"net1.0.": "net.0.", "net1.2.": "net.2.", "ds_conv.": "net.4.", "net2.1.": "net.6.",
                     "net2.2.": "net.7."}


def _from_anygpt_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A SoundStorm state dict in either release layout -> ours (conv module names; EinMix biases of newer einops
    are stored as ``[1, 1, Q, L]``, ours as ``[Q, L]``)."""
    out = {}
    for key, value in state.items():
        for old, new in _ANYGPT_CONV_KEYS.items():
            marker = f".conv.{old}"
            if marker in key:
                key = key.replace(marker, f".conv.{new}")
                break
        if key == "net.to_logits.2.bias" and value.dim() == 4:
            value = value.reshape(value.shape[-2:])
        out[key] = value
    return out


def _release_top_k(logits: torch.Tensor, thres: float) -> torch.Tensor:
    """Keep the top ``ceil((1 - thres) * L)`` logits of each position, the rest -inf (the release's filter)."""
    k = math.ceil((1 - thres) * logits.shape[-1])
    values, indices = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter_(2, indices, values)


def _sample_top_k(logits: torch.Tensor, temperature: float, fraction: float,
                  generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    k = max(1, math.ceil(fraction * logits.shape[-1]))
    values, indices = logits.topk(k, dim=-1)
    probs = (values / temperature).softmax(-1)
    choice = torch.multinomial(probs.reshape(-1, k), 1, generator=generator).view(*probs.shape[:-1], 1)
    return indices.gather(-1, choice)[..., 0]
