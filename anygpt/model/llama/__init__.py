"""The LLaMA architecture: the decoder (`model`), its sizes (`config`), how it is sharded, checkpointed and compiled for
training (`parallelize`), and the HF ``LlamaForCausalLM`` key map (`hf_adapter`)."""
