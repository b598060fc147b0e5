"""benchmarks/perf/finetune_memory.py: its counts agree with the real models."""

from dataclasses import replace
from pathlib import Path

from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.model.lora import LoraOptions, apply_lora, trainable_summary
from benchmarks.perf.finetune_memory import estimate, table


def test_lora_trainable_count_matches_the_injected_model():
    config = replace(Config.from_name("tiny"), vocab_size=400)
    model = apply_lora(LLaMA(config), LoraOptions(rank=8), range(300, 400))
    trainable, _, _ = trainable_summary(model)
    assert estimate(config, 64, "lora", rank=8, text_vocab=300).trainable == trainable


def test_full_fsdp_shards_weights_grads_and_adamw_over_eight():
    config = Config.from_name("llama2-7b")
    full = estimate(config, 4500, "full")
    p = config.num_parameters()
    assert full.gpus == 8 and full.optimizer == 8 * p / 8  # two fp32 moments, sharded
    assert full.trainable == p
    lora, qlora = estimate(config, 4500, "lora"), estimate(config, 4500, "qlora")
    assert qlora.weights < lora.weights  # the 4-bit base below the bf16 one
    assert lora.activations == qlora.activations < full.activations * 2


def test_table_prints_the_three_recipes():
    text = table(4500)
    assert "full FSDP2" in text and "LoRA r16" in text and "QLoRA r16" in text and "4500 tokens" in text


def test_docs_table_is_the_scripts_output():
    docs = (Path(__file__).resolve().parents[2] / "docs/finetune.md").read_text()
    assert table(4500, 16, markdown=True) in docs
