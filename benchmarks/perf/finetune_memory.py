"""Estimated GPU memory per device for fine-tuning AnyGPT-7B: full FSDP2 on 8 GPUs, LoRA in bf16 on one, QLoRA on one.

    python -m benchmarks.perf.finetune_memory [--length 4500] [--rank 16] [--markdown]

Counted from the architecture (`anygpt.model.llama.config`), not measured: weights, gradients and AdamW state by their
dtypes, the activations autograd keeps with activation checkpointing on (each block's input, plus one block's
internals while it is recomputed), and the output layer's logits (bf16, their fp32 copy for the loss, its saved
log-softmax and its gradient). Left out: the CUDA context and allocator fragmentation (typically 1-3 GiB more), and
communication buffers beyond FSDP2's gathered blocks. `benchmarks/perf/gpu_suite.py` measures a LoRA step's peak on
the first lent GPU to check these figures.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from anygpt.model.llama.config import Config

GiB = 2**30
TEXT_VOCAB = 32000  # LLaMA-2's text vocabulary; AnyGPT adds its modality codes, markers and instruction tokens above
ANYGPT_VOCAB = 49420  # AnyGPT-chat: 49418 ids + <-Ins->/<-Res->
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit values, an 8-bit absmax per 64, an fp32 constant per 256 absmax


@dataclass
class Estimate:
    recipe: str
    gpus: int
    trainable: int
    weights: float  # bytes per GPU
    grads: float
    optimizer: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations + self.logits


def projection_shapes(c: Config) -> dict[str, tuple[int, int]]:
    """(in, out) of each projection of a block."""
    q, kv = c.n_head * c.head_size, c.kv_heads * c.head_size
    return {"q_proj": (c.n_embd, q), "k_proj": (c.n_embd, kv), "v_proj": (c.n_embd, kv), "o_proj": (q, c.n_embd),
            "gate_proj": (c.n_embd, c.intermediate_size), "up_proj": (c.n_embd, c.intermediate_size),
            "down_proj": (c.intermediate_size, c.n_embd)}


def block_activation_elements(c: Config, tokens: int, lora: bool) -> int:
    """Elements one block saves for backward (bf16): norms' inputs and outputs, q/k/v, the attention output (SDPA's
    flash/memory-efficient kernels keep no T x T matrix), gate/up/silu/product of the MLP; LoRA adds each adapter's
    dropout output (its input's size)."""
    h, i = c.n_embd, c.intermediate_size
    kv = c.kv_heads * c.head_size
    per_token = 2 * h + h + 2 * kv + h + 2 * h + 4 * i  # attn norm, q, k, v, attn out; mlp norm; gate/up/silu/prod
    if lora:
        per_token += sum(shape[0] for shape in projection_shapes(c).values())
    return tokens * per_token


def estimate(c: Config, tokens: int, recipe: str, rank: int = 16, text_vocab: int = TEXT_VOCAB) -> Estimate:
    """Bytes per GPU for ``recipe`` (``full``, ``lora``, ``qlora``) on one sequence of ``tokens``; the added tokens
    (trainable rows under LoRA) are the ids from ``text_vocab`` up."""
    p = c.num_parameters()
    embed = c.vocab_size * c.n_embd * (1 if c.tie_embeddings else 2)
    block_params = (p - embed - c.n_embd) // c.n_layer
    act = (c.n_layer * tokens * c.n_embd + block_activation_elements(c, tokens, recipe != "full")) * 2
    logits = tokens * c.vocab_size * (2 + 4 + 4 + 4)
    if recipe == "full":  # FSDP2 over 8: fp32 master weights, grads and two AdamW moments sharded; bf16 gathers
        gpus = 8
        gathered = 2 * (2 * block_params) + 2 * embed + c.n_embd  # current + prefetched block, the root (bf16)
        # gradients: the fp32 shards, plus the gathered units' bf16 gradients and their fp32 copy for reduce-scatter
        return Estimate("full FSDP2, bf16-mixed", gpus, p, 4 * p / gpus + gathered, 4 * p / gpus + 3 * gathered,
                        8 * p / gpus, act, logits)
    lora_params = c.n_layer * sum(rank * (i + o) for i, o in projection_shapes(c).values())
    rows = 2 * (c.vocab_size - text_vocab) * c.n_embd  # trainable added-token rows of embedding and head
    trainable = lora_params + rows
    # peft's trainable tokens keep the original rows and build the merged table in each forward (bf16 copies)
    tokens_overhead = 2 * (rows + embed)
    if recipe == "lora":  # bf16-true: everything bf16, AdamW moments bf16
        return Estimate(f"LoRA r{rank}, bf16", 1, trainable, 2 * p + 2 * trainable + tokens_overhead,
                        2 * trainable, 4 * trainable, act, logits)
    projections = c.n_layer * sum(i * o for i, o in projection_shapes(c).values())
    base = NF4_BYTES * projections + 2 * (p - projections)  # 4-bit projections; embeddings, norms in bf16
    return Estimate(f"QLoRA r{rank}, NF4 base", 1, trainable, base + 4 * trainable + tokens_overhead,
                    4 * trainable, 8 * trainable, act, logits)


def table(length: int = 4500, rank: int = 16, markdown: bool = False) -> str:
    c = replace(Config.from_name("llama2-7b"), vocab_size=ANYGPT_VOCAB, block_size=max(length, 4096))
    rows = [estimate(c, length, recipe, rank) for recipe in ("full", "lora", "qlora")]
    head = ["recipe", "GPUs", "trainable params", "weights", "grads", "AdamW", "activations", "logits", "total/GPU"]
    lines = [[r.recipe, str(r.gpus), f"{r.trainable / 1e6:,.0f}M ({100 * r.trainable / c.num_parameters():.2f}%)",
              *[f"{v / GiB:.1f} GiB" for v in (r.weights, r.grads, r.optimizer, r.activations, r.logits, r.total)]]
             for r in rows]
    lora_params = c.n_layer * sum(rank * (i + o) for i, o in projection_shapes(c).values())
    rows_params = 2 * (c.vocab_size - TEXT_VOCAB) * c.n_embd
    note = (f"LoRA/QLoRA trainable = adapters on {len(projection_shapes(c))} projections x {c.n_layer} layers "
            f"{lora_params / 1e6:.1f}M + added-token rows of embedding and head {rows_params / 1e6:.1f}M")
    title = (f"AnyGPT-7B ({c.num_parameters() / 1e9:.2f}B parameters, vocabulary {c.vocab_size}), one sequence of "
             f"{length} tokens per GPU, activation checkpointing on")
    if markdown:
        out = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join([*out, "", note])
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([title, fmt.format(*head), *[fmt.format(*line) for line in lines], note])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4500)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    print(table(args.length, args.rank, args.markdown))


if __name__ == "__main__":
    main()
