"""Named sizes of the LLaMA decoder. ``Config.from_name("llama2-7b", vocab_size=49418)``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Config:
    """Sizes of a LLaMA-architecture decoder (names follow HF's LlamaConfig where one exists)."""

    name: str = "custom"
    vocab_size: int = 32000
    block_size: int = 4096  # longest sequence RoPE tables and KV caches are built for
    n_layer: int = 32
    n_head: int = 32
    n_kv_head: int | None = None  # None: multi-head attention (n_kv_head == n_head); fewer: grouped-query attention
    n_embd: int = 4096
    intermediate_size: int = 11008
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} must be divisible by n_head {self.n_head}")
        if self.n_head % self.kv_heads:
            raise ValueError(f"n_head {self.n_head} must be divisible by n_kv_head {self.kv_heads}")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> Config:
        if name not in NAMED_CONFIGS:
            raise KeyError(f"Unknown model size {name!r}; named sizes: {sorted(NAMED_CONFIGS)}")
        return replace(NAMED_CONFIGS[name], **overrides)

    def num_parameters(self) -> int:
        """Parameter count without building the model (embeddings, blocks, final norm, head)."""
        c = self
        attn = c.n_embd * c.head_size * (c.n_head * 2 + c.kv_heads * 2)
        mlp = 3 * c.n_embd * c.intermediate_size
        block = attn + mlp + 2 * c.n_embd
        head = 0 if c.tie_embeddings else c.vocab_size * c.n_embd
        return c.vocab_size * c.n_embd + c.n_layer * block + c.n_embd + head


NAMED_CONFIGS: dict[str, Config] = {
    c.name: c
    for c in [
        # CPU-sized models for tests and the demo corpus.
        Config(name="tiny", vocab_size=512, block_size=256, n_layer=2, n_head=4, n_kv_head=2, n_embd=64,
               intermediate_size=172),
        Config(name="demo", vocab_size=8192, block_size=1024, n_layer=6, n_head=8, n_kv_head=4, n_embd=256,
               intermediate_size=688),
        Config(name="small-100m", vocab_size=32000, block_size=2048, n_layer=12, n_head=12, n_embd=768,
               intermediate_size=2048),
        # ~1B for single-GPU throughput/MFU checks and small runs (TinyLlama-1.1B's shape with a 4096 context).
        Config(name="llama-1b", vocab_size=32000, block_size=4096, n_layer=22, n_head=32, n_kv_head=4, n_embd=2048,
               intermediate_size=5632),
        # Meta's LLaMA-2 sizes (AnyGPT uses 7B).
        Config(name="llama2-7b", vocab_size=32000, block_size=4096, n_layer=32, n_head=32, n_embd=4096,
               intermediate_size=11008),
        Config(name="llama2-13b", vocab_size=32000, block_size=4096, n_layer=40, n_head=40, n_embd=5120,
               intermediate_size=13824),
    ]
}
