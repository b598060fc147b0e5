"""Generation: static-KV-cache decoding, logits processors, beam search, constrained decoding, presets."""
