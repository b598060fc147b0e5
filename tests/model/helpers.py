"""Tiny random HF LLaMA models shared by the model and generation tests."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_hf_llama(seed: int = 0, vocab_size: int = 96, n_kv_head: int = 2, tie: bool = False, layers: int = 2,
                  hidden: int = 32, heads: int = 4, intermediate: int = 56) -> LlamaForCausalLM:
    """A random fp32 LlamaForCausalLM with weights scaled up (std 0.2, random norm gains) so that differences in
    the arithmetic would show in the logits instead of vanishing near zero."""
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=n_kv_head,
                         max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=tie,
                         rope_theta=10000.0, attn_implementation="sdpa", pad_token_id=0, bos_token_id=1,
                         eos_token_id=2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.2)
    return model
