import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM

from anygpt.model.llama.config import Config
from anygpt.model.llama.hf_adapter import (
    CheckpointError,
    config_from_hf,
    load_hf,
    load_hf_weights,
    save_hf,
    weight_files,
)
from anygpt.model.llama.model import LLaMA
from tests.model.helpers import tiny_hf_llama


def _ids(vocab: int, shape=(2, 13), seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n_kv_head,tie", [(4, False), (2, False), (1, True)], ids=["mha", "gqa", "mqa-tied"])
def test_logits_match_transformers(tmp_path, n_kv_head, tie):
    hf = tiny_hf_llama(n_kv_head=n_kv_head, tie=tie)
    hf.save_pretrained(tmp_path)
    ours = load_hf(tmp_path).eval()
    assert ours.config.kv_heads == n_kv_head and ours.config.tie_embeddings == tie
    if tie:
        assert ours.lm_head.weight is ours.embed_tokens.weight
    ids = _ids(ours.config.vocab_size)
    with torch.no_grad():
        expected = hf(ids).logits
        got = ours(ids)
    diff = (got - expected).abs().max().item()
    print(f"max abs logit diff vs transformers ({n_kv_head} kv heads, tied={tie}): {diff:.2e}")
    assert diff < 1e-5
    assert expected.abs().max() > 1  # the comparison is not between near-zero logits


def test_kv_cache_decoding_equals_full_forward(tmp_path):
    hf = tiny_hf_llama(n_kv_head=2)
    hf.save_pretrained(tmp_path)
    model = load_hf(tmp_path).eval()
    ids = _ids(model.config.vocab_size, (2, 12))
    with torch.no_grad():
        full = model(ids)
        model.set_kv_cache(batch_size=2, max_len=32)
        prefill = model(ids[:, :5], input_pos=torch.arange(5))
        steps = [model(ids[:, t:t + 1], input_pos=torch.tensor([t])) for t in range(5, 12)]
    cached = torch.cat([prefill, *steps], dim=1)
    assert (cached - full).abs().max() < 1e-5
    model.clear_kv_cache()
    with pytest.raises(RuntimeError, match="set_kv_cache"):
        model(ids[:, :1], input_pos=torch.tensor([0]))


@pytest.mark.parametrize("tie", [False, True])
def test_export_loads_in_transformers(tmp_path, tie):
    config = Config(name="t", vocab_size=80, block_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                    intermediate_size=48, tie_embeddings=tie, norm_eps=1e-6)
    torch.manual_seed(0)
    ours = LLaMA(config).eval()
    save_hf(ours, tmp_path)
    hf = LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = _ids(80)
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids)).abs().max() < 1e-5


def test_hf_dir_round_trip_equal_tensors(tmp_path):
    hf = tiny_hf_llama(n_kv_head=2)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_hf(tmp_path / "hf")
    save_hf(ours, tmp_path / "back")
    a, b = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    cfg_a = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config_from_hf(cfg_a) == config_from_hf(json.loads((tmp_path / "back" / "config.json").read_text()))


def test_sharded_safetensors_and_bin_layouts(tmp_path):
    hf = tiny_hf_llama(n_kv_head=2)
    hf.save_pretrained(tmp_path / "hf")
    ref = load_hf(tmp_path / "hf")
    files = save_hf(ref, tmp_path / "sharded", max_shard_size=20_000)
    assert len(files) > 2 and (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    assert weight_files(tmp_path / "sharded") == sorted(files)
    sharded = load_hf(tmp_path / "sharded")
    # transformers reads our sharded export too
    hf_back = LlamaForCausalLM.from_pretrained(tmp_path / "sharded", dtype=torch.float32).eval()
    # pytorch_model.bin, loaded with weights_only=True
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    torch.save(load_file(tmp_path / "hf" / "model.safetensors"), bin_dir / "pytorch_model.bin")
    from_bin = load_hf(bin_dir)
    ids = _ids(ref.config.vocab_size)
    with torch.no_grad():
        expected = ref(ids)
        for other in (sharded(ids), from_bin(ids), hf_back(ids).logits):
            assert torch.equal(other, expected) or (other - expected).abs().max() < 1e-5


def test_load_into_existing_model_and_dtype(tmp_path):
    hf = tiny_hf_llama(n_kv_head=4)
    hf.save_pretrained(tmp_path)
    model = LLaMA(config_from_hf(json.loads((tmp_path / "config.json").read_text())))
    load_hf_weights(model, tmp_path)
    assert torch.equal(model.embed_tokens.weight, hf.model.embed_tokens.weight)
    bf16 = load_hf(tmp_path, dtype=torch.bfloat16)
    assert bf16.lm_head.weight.dtype == torch.bfloat16 and bf16.lm_head.weight.device.type == "cpu"


# -- bad input ------------------------------------------------------------------------------------------------------
def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hf(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(tiny_hf_llama().config.to_dict()))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_hf(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "shard-1.safetensors"}}))
    with pytest.raises(FileNotFoundError, match="shard-1.safetensors"):
        load_hf(tmp_path)


def test_missing_unexpected_and_misshaped_keys(tmp_path):
    hf = tiny_hf_llama(n_kv_head=2)
    hf.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    broken = dict(weights)
    del broken["model.layers.1.mlp.up_proj.weight"]
    broken["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(32)
    save_file(broken, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_hf(tmp_path)
    assert "model.layers.1.mlp.up_proj.weight" in str(err.value)
    assert "model.layers.0.self_attn.q_proj.bias" in str(err.value)
    broken = dict(weights)
    broken["model.norm.weight"] = torch.ones(31)
    save_file(broken, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model.norm.weight has shape \(31,\)"):
        load_hf(tmp_path)


@pytest.mark.parametrize("change,match", [
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "RoPE scaling"),
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}, "RoPE scaling"),
    ({"attention_bias": True}, "attention_bias"),
    ({"mlp_bias": True}, "mlp_bias"),
    ({"head_dim": 16}, "head_dim"),
    ({"model_type": "mistral", "architectures": ["MistralForCausalLM"]}, "only LLaMA"),
])
def test_unsupported_variants_are_rejected(change, match):
    hf_config = {**tiny_hf_llama().config.to_dict(), **change}
    with pytest.raises(CheckpointError, match=match):
        config_from_hf(hf_config)


def test_config_from_hf_fields():
    cfg = config_from_hf({"model_type": "llama", "vocab_size": 49418, "hidden_size": 4096, "num_hidden_layers": 32,
                          "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 11008,
                          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096,
                          "tie_word_embeddings": False})
    assert cfg == replace(Config.from_name("llama2-7b", vocab_size=49418), name="hf")


def test_load_builds_on_meta_and_assigns(tmp_path, monkeypatch):
    """The 7B path: parameters are created on the meta device (no random init, no second copy) and every tensor
    of the checkpoint is assigned in place of them."""
    hf = tiny_hf_llama(n_kv_head=2, tie=True)
    hf.save_pretrained(tmp_path)
    devices = []
    original = LLaMA.reset_parameters

    def spy(self):
        devices.extend(p.device.type for p in self.parameters())
        original(self)

    monkeypatch.setattr(LLaMA, "reset_parameters", spy)
    model = load_hf(tmp_path)
    assert devices and set(devices) == {"meta"}
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.lm_head.weight is model.embed_tokens.weight
    assert torch.equal(model.embed_tokens.weight, hf.model.embed_tokens.weight)
