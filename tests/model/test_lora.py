"""LoRA fine-tuning of the tiny model: what trains, what stays frozen, and that adapters load everywhere."""

from copy import deepcopy
from types import SimpleNamespace

import pytest
import torch

from anygpt.checkpoints import Bundle, ExportBundle, load_bundle, save_bundle
from anygpt.data.tiny import make_tokenizer
from anygpt.generation.options import LoadingOptions
from anygpt.generation.pipeline import AnyGPT
from anygpt.modalities.spec import ModalitySpec
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.model.lm import AnyGPTLM
from anygpt.model.lora import LoraOptions, apply_lora, load_adapter, trainable_summary
from anygpt.text_tokenizer import load_text_tokenizer
from anygpt.vocab import UnifiedVocab
from tests.generation.stub_tokenizers import stub_image, stub_music, stub_speech

STUBS = {"image": stub_image(64), "speech": stub_speech(32), "music": stub_music(64)}


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> UnifiedVocab:
    text = make_tokenizer(tmp_path_factory.mktemp("tok"))
    specs = [ModalitySpec("image", 64, ("<soim>", "<eoim>"), "<👀{}>"),
             ModalitySpec("speech", 32, ("<sosp>", "<eosp>"), "<🗣️{}>"),
             ModalitySpec("music", 64, ("<somu>", "<eomu>"), "<🎶{}>")]
    return UnifiedVocab(load_text_tokenizer(str(text)), specs)


@pytest.fixture(scope="module")
def tuned(vocab):
    """A LoRA run of 30 AdamW steps on one batch: (module, base model before training, losses)."""
    torch.manual_seed(0)
    lm = AnyGPTLM("tiny", vocab=vocab, learning_rate=1e-2, warmup=1, max_steps=30, grad_clip=None,
                  lora=LoraOptions(rank=4, alpha=8, dropout=0.0))
    lm._trainer = SimpleNamespace(world_size=1, precision="32-true")
    lm.configure_model()
    before = deepcopy(lm.model.state_dict())
    g = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(0, len(vocab), (4, 33), generator=g),
             "loss_mask": torch.ones(4, 33, dtype=torch.bool)}
    optimizer = lm.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(30):
        total, _, counts = lm.losses(batch)
        loss = total / counts.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    lm.model.eval()
    return lm, before, losses, batch["input_ids"][:, :20]


def test_lora_lowers_the_loss_training_a_small_fraction(tuned):
    lm, _, losses, _ = tuned
    assert losses[-1] < losses[0] - 0.5, losses
    trainable, total, fraction = trainable_summary(lm.model)
    # rank-4 adapters (rank x (in + out)) on 7 projections x 2 layers: q, k, v, o (64 wide, 2 of 4 heads for k/v),
    # gate, up, down (64 <-> 172); plus the added rows (vocab - 300 text ids) of the embedding and the head
    adapters = 2 * 4 * ((64 + 64) + 2 * (64 + 32) + (64 + 64) + 3 * (64 + 172))
    added = 2 * (lm.model.config.vocab_size - lm.vocab.text.vocab_size) * 64
    assert trainable == adapters + added and 0 < fraction < 0.5


def test_only_adapters_and_added_token_rows_change(tuned):
    lm, before, _, _ = tuned
    after = lm.model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all("lora_" in k or "trainable_tokens_delta" in k for k in changed), changed
    assert any("embed_tokens" in k for k in changed) and any("lm_head" in k for k in changed)


def test_merged_export_equals_base_plus_adapter_and_adapter_reloads(tuned, vocab, tmp_path):
    lm, before, _, ids = tuned
    with torch.no_grad():
        expected = lm.model(ids)
    trainer = SimpleNamespace(global_rank=0, datamodule=SimpleNamespace(vocab=vocab, tokenizer_refs={}),
                              global_step=5, precision="32-true", world_size=1,
                              strategy=SimpleNamespace(root_device=torch.device("cpu")))
    ExportBundle(str(tmp_path / "export")).on_fit_end(trainer, lm)
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_config.json").exists()
    size = lambda folder: sum(p.stat().st_size for p in folder.iterdir())  # noqa: E731
    assert size(adapter) < size(tmp_path / "export") / 4

    exported = load_bundle(tmp_path / "export", tokenizers=STUBS)
    assert exported.training["steps"] == 5 and exported.training["precision"] == "32-true"  # how it was trained
    merged = exported.model
    base = LLaMA(lm.model.config)
    base.load_state_dict({k.replace(".base_layer", "").replace(".token_adapter", ""): v for k, v in before.items()
                          if "lora_" not in k and "trainable_tokens" not in k})
    text = vocab.text.vocab_size
    assert torch.equal(merged.embed_tokens.weight[:text], base.embed_tokens.weight[:text])  # text rows frozen
    assert not torch.equal(merged.embed_tokens.weight[text:], base.embed_tokens.weight[text:])
    assert torch.equal(merged.blocks[0].input_norm.weight, base.blocks[0].input_norm.weight)
    with torch.no_grad():
        torch.testing.assert_close(merged(ids), expected, atol=1e-5, rtol=0)
        # the base plus the saved adapter, in memory and through load_bundle(adapter=), gives the same outputs
        torch.testing.assert_close(load_adapter(deepcopy(base), adapter).eval()(ids), expected, atol=1e-5, rtol=0)
        save_bundle(Bundle(base, vocab, {}), tmp_path / "base")
        again = load_bundle(tmp_path / "base", tokenizers=STUBS, adapter=adapter).model
        torch.testing.assert_close(again(ids), expected, atol=1e-5, rtol=0)
        # the loading option every command (chat, generate, benchmark, serve) opens checkpoints with
        engine = AnyGPT.load(tmp_path / "base", LoadingOptions(tokenizers=STUBS, adapter=str(adapter)))
        torch.testing.assert_close(engine.bundle.model(ids), expected, atol=1e-5, rtol=0)


def test_adapter_folder_is_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter folder"):
        load_adapter(LLaMA(Config.from_name("tiny")), tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a CPU-only machine gives")
def test_qlora_on_cpu_stops_saying_it_needs_a_gpu():
    model = LLaMA(Config.from_name("tiny"))
    with pytest.raises(RuntimeError, match="QLoRA .* needs a CUDA GPU"):
        apply_lora(model, LoraOptions(quantize="nf4"), range(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs a CUDA GPU: bitsandbytes' 4-bit layers have "
                    "no CPU kernels")
def test_qlora_trains_adapters_on_a_4bit_base():
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes (pip install 'anygpt[qlora]')")
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny"))
    apply_lora(model, LoraOptions(rank=4, quantize="nf4"), range(300, 512))
    ids = torch.randint(0, 512, (2, 16), device="cuda")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(10):
        logits = model(ids[:, :-1]).float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
