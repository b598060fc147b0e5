"""The LLaMA decoder in one file: RMSNorm, rotary embeddings, grouped-query SDPA attention, SwiGLU MLP, KV cache.

Numerically equal to HF ``LlamaForCausalLM`` on the same weights (rotary embeddings use HF's rotate-half layout, so an
HF checkpoint loads with a plain key map; see `anygpt.model.llama.hf_adapter`). The model owns its caches: the RoPE
tables (`reset_rope_cache`) and the decoding KV cache (`set_kv_cache`, `ensure_kv_cache`, `reorder_kv_cache`), so
callers never reach into its blocks.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anygpt.model.llama.config import Config


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in fp32 as LLaMA does, then cast back before scaling.
        dtype = x.dtype
        x = F.rms_norm(x.float(), (x.size(-1),), eps=self.eps)  # one fused kernel: x * rsqrt(mean(x^2) + eps)
        return self.weight * x.to(dtype)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


def rope_cache(seq_len: int, head_size: int, theta: float, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """cos/sin tables of shape (seq_len, head_size), each frequency repeated for both halves (rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size))
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` (B, heads, T, head_size) by position; cos/sin are fp32 (B or 1, 1, T, head_size).
    Low-precision inputs are rotated in fp32 and cast back."""
    half = x.size(-1) // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    if x.dtype == cos.dtype:
        return x * cos + rotated * sin
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class KVCache(nn.Module):
    """Preallocated keys and values (B, kv_heads, max_len, head_size); `update` writes new entries in place."""

    def __init__(self, batch_size: int, kv_heads: int, max_len: int, head_size: int, device=None, dtype=None) -> None:
        super().__init__()
        shape = (batch_size, kv_heads, max_len, head_size)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype), persistent=False)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k.index_copy_(2, input_pos, k.to(self.k.dtype))
        self.v.index_copy_(2, input_pos, v.to(self.v.dtype))
        return self.k, self.v


class Attention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        hs = config.head_size
        self.q_proj = nn.Linear(config.n_embd, config.n_head * hs, bias=False)
        self.k_proj = nn.Linear(config.n_embd, config.kv_heads * hs, bias=False)
        self.v_proj = nn.Linear(config.n_embd, config.kv_heads * hs, bias=False)
        self.o_proj = nn.Linear(config.n_head * hs, config.n_embd, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, input_pos: Tensor | None) -> Tensor:
        B, T, _ = x.shape
        hs = self.config.head_size
        q = self.q_proj(x).view(B, T, self.config.n_head, hs).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.config.kv_heads, hs).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.config.kv_heads, hs).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if input_pos is not None:
            if self.kv_cache is None:
                raise RuntimeError("input_pos was given but no KV cache is set; call model.set_kv_cache() first")
            k, v = self.kv_cache.update(input_pos, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                           enable_gqa=self.config.kv_heads != self.config.n_head)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.n_embd, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.input_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = Attention(config)
        self.post_attention_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, input_pos: Tensor | None) -> Tensor:
        x = x + self.attn(self.input_norm(x), cos, sin, mask, input_pos)
        return x + self.mlp(self.post_attention_norm(x))


class LLaMA(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like HF LLaMA: normal(0, init_std) for every linear and embedding, ones for norms."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            elif isinstance(module, RMSNorm):
                module.reset_parameters()

    def _rope(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos/sin tables covering at least ``max(length, block_size)`` positions, built once per device."""
        if self.rope_cos.size(0) < length or self.rope_cos.device != device:
            n = max(length, self.config.block_size)
            self.rope_cos, self.rope_sin = rope_cache(n, self.config.head_size, self.config.rope_theta, device)
        return self.rope_cos, self.rope_sin

    def forward(self, idx: Tensor, input_pos: Tensor | None = None, position_ids: Tensor | None = None,
                mask: Tensor | None = None, *, logits_to_keep: int = 0) -> Tensor:
        """Logits (B, T, vocab) for token ids ``idx`` (B, T).

        Args:
            input_pos: cache slots (T,) to write this chunk's keys/values into (decoding with a KV cache). None trains
                without a cache and uses causal attention over ``idx`` alone.
            position_ids: rotary positions (B, T) or (T,); defaults to ``input_pos`` or ``arange(T)``. Left-padded
                batches pass per-row positions. Positions must stay below ``max(block_size, cache length, T)``.
            mask: boolean attention mask broadcastable to (B, 1, T, S) where True means "may attend"; S is T without a
                cache and the cache length with one. Defaults to causal (over cache slots when caching).
            logits_to_keep: if > 0, only the last this many positions go through the output layer (a prefill needs
                one; with a 32k vocabulary the head is a large share of the work).
        """
        B, T = idx.shape
        cache_len = 0
        if input_pos is not None:
            cache_len = self.kv_cache_len()
            if cache_len == 0:
                raise RuntimeError("input_pos was given but no KV cache is set; call model.set_kv_cache() first")
        # No data-dependent size here (no .max()): the table covers every legal position, which keeps the decode
        # step free of host syncs and compilable.
        cos, sin = self._rope(max(T, cache_len), idx.device)
        if position_ids is None and input_pos is None:  # training: positions 0..T-1, a plain slice
            cos, sin = cos[None, None, :T], sin[None, None, :T]
        else:
            if position_ids is None:
                position_ids = input_pos
            if position_ids.dim() == 1:
                position_ids = position_ids.unsqueeze(0)
            # (B or 1, 1, T, head_size); an embedding lookup is the cheapest gather
            cos, sin = F.embedding(position_ids, cos).unsqueeze(1), F.embedding(position_ids, sin).unsqueeze(1)
        if input_pos is not None and mask is None:
            slots = torch.arange(cache_len, device=idx.device)
            mask = (slots.unsqueeze(0) <= input_pos.unsqueeze(1)).view(1, 1, T, -1)
        x = self.embed_tokens(idx)
        for block in self.blocks:
            x = block(x, cos, sin, mask, input_pos)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return self.lm_head(self.norm(x))

    def reset_rope_cache(self) -> None:
        """Drop the (non-persistent) RoPE tables; they are rebuilt on the next forward. Call after loading onto the meta
        device or ``to_empty``, where the tables would be missing or garbage."""
        self.rope_cos, self.rope_sin = torch.empty(0), torch.empty(0)

    # -- KV cache ------------------------------------------------------------------------------------------------------
    def kv_cache_len(self) -> int:
        """Slots of the current KV cache, 0 when none is set."""
        cache = self.blocks[0].attn.kv_cache
        return 0 if cache is None else cache.k.size(2)

    def ensure_kv_cache(self, batch_size: int, max_len: int) -> None:
        """Keep the current cache if it already has this batch size and length on the model's device and dtype (a
        later call of the same shape reuses it; stale contents are harmless), else allocate one."""
        cache = self.blocks[0].attn.kv_cache
        ref = self.lm_head.weight
        if (cache is None or cache.k.shape[0] != batch_size or cache.k.shape[2] != max_len
                or cache.k.device != ref.device or cache.k.dtype != ref.dtype):
            self.set_kv_cache(batch_size, max_len, device=ref.device)

    @torch.no_grad()
    def reorder_kv_cache(self, rows: Tensor) -> None:
        """Beam search: cache row ``i`` continues from row ``rows[i]``."""
        for block in self.blocks:
            cache = block.attn.kv_cache
            cache.k.copy_(cache.k.index_select(0, rows))
            cache.v.copy_(cache.v.index_select(0, rows))

    def set_kv_cache(self, batch_size: int, max_len: int | None = None, device=None) -> None:
        """Allocate one static cache per block (no re-allocation while decoding)."""
        max_len = max_len or self.config.block_size
        ref = self.lm_head.weight
        device = torch.device(device) if device is not None else ref.device
        self._rope(max_len, device)
        for block in self.blocks:
            block.attn.kv_cache = KVCache(batch_size, self.config.kv_heads, max_len, self.config.head_size,
                                          device=device, dtype=ref.dtype)

    def clear_kv_cache(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None

    # -- vocabulary ----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def resize_token_embeddings(self, vocab_size: int, init: str = "mean", generator: torch.Generator | None = None
                                ) -> None:
        """Grow (or shrink) the embedding and output rows. Kept rows stay bit-identical; new rows are the mean of the
        old rows (``init="mean"``) or normal with the old rows' std (``init="random"``).

        This replaces the ``embed_tokens``/``lm_head`` modules, so call it on the plain model *before* ``fully_shard``
        (i.e. load the checkpoint, resize, then shard in ``configure_model``); it also works on a meta-device model,
        where it only changes shapes. Optimizer state built earlier refers to the old parameters.
        """
        if init not in ("mean", "random"):
            raise ValueError(f"init must be 'mean' or 'random', got {init!r}")
        old = self.config.vocab_size
        if vocab_size == old:
            return

        def grow(weight: Tensor) -> Tensor:
            new = weight.new_empty(vocab_size, weight.size(1))
            keep = min(old, vocab_size)
            new[:keep] = weight[:keep]
            if vocab_size > old:
                if init == "mean":
                    new[old:] = weight.float().mean(0, keepdim=True).to(weight.dtype)
                else:
                    noise = torch.randn(vocab_size - old, weight.size(1), generator=generator, dtype=torch.float32)
                    new[old:] = (noise * weight.float().std()).to(device=weight.device, dtype=weight.dtype)
            return new

        self.embed_tokens = nn.Embedding.from_pretrained(grow(self.embed_tokens.weight), freeze=False)
        if self.config.tie_embeddings:
            self.lm_head = nn.Linear(self.config.n_embd, vocab_size, bias=False, device=self.embed_tokens.weight.device)
            self.lm_head.weight = self.embed_tokens.weight
        else:
            head = nn.Linear(self.config.n_embd, vocab_size, bias=False, device=self.lm_head.weight.device,
                             dtype=self.lm_head.weight.dtype)
            head.weight.copy_(grow(self.lm_head.weight))
            self.lm_head = head
        self.config = replace(self.config, vocab_size=vocab_size)
        for block in self.blocks:
            block.attn.config = self.config


def flops_per_token(config: Config, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward = 6N plus attention), for MFU figures."""
    n = config.num_parameters() - config.vocab_size * config.n_embd  # embedding lookups are free
    attention = 12 * config.n_layer * config.n_embd * seq_len
    return 6 * n + attention
