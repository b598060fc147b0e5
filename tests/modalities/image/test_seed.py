"""SEED-2 tokenizer: reduced-width build, the release's key names, parity of the encoder with transformers' BLIP-2."""

import pytest
import torch

from anygpt.modalities.image import SEEDImageTokenizer
from anygpt.modalities.registry import codec_class, modality_for

SMALL = dict(
    image_size=28,
    patch_size=14,
    vit_width=64,
    vit_depth=2,
    vit_heads=4,
    vit_hidden=128,
    qformer_width=32,
    qformer_depth=2,
    qformer_heads=4,
    qformer_hidden=64,
    cross_attention_freq=2,
    num_queries=32,
    codebook_dim=8,
    n_embed=64,
    decode_depth=1,
    decode_heads=4,
    down_dims=(16, 8, 4),
    embed_dim=24,
)


def _reference():
    from transformers import Blip2QFormerConfig, Blip2QFormerModel, Blip2VisionConfig, Blip2VisionModel

    torch.manual_seed(0)
    vision = Blip2VisionModel(
        Blip2VisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=28,
            patch_size=14,
            layer_norm_eps=1e-5,
        )
    ).eval()
    qformer = Blip2QFormerModel(
        Blip2QFormerConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            encoder_hidden_size=64,
            cross_attention_frequency=2,
            layer_norm_eps=1e-12,
        )
    ).eval()
    with torch.no_grad():  # give every tensor spread (biases and norms start at 0/1)
        for p in [*vision.parameters(), *qformer.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
        for layer in vision.encoder.layers:  # EVA has no key bias
            layer.self_attn.qkv.bias[64:128] = 0
    return vision, qformer


def _release_checkpoint(vision, qformer, tmp_path):
    """Write seed_quantizer.pt and eva_vit_g.pth with the original key names (AILab-CVC/SEED, BLIP-2)."""
    g = torch.Generator().manual_seed(1)

    def rnd(*shape):
        return 0.2 * torch.randn(*shape, generator=g)

    v = vision.state_dict()
    eva = {
        "cls_token": v["embeddings.class_embedding"],
        "pos_embed": v["embeddings.position_embedding"],
        "patch_embed.proj.weight": v["embeddings.patch_embedding.weight"],
        "patch_embed.proj.bias": v["embeddings.patch_embedding.bias"],
    }
    for i in range(3):  # a third block, as eva_vit_g.pth has 40 of which BLIP-2 uses 39
        src = f"encoder.layers.{min(i, 1)}."
        bias = v[src + "self_attn.qkv.bias"]
        eva.update(
            {
                f"blocks.{i}.norm1.weight": v[src + "layer_norm1.weight"],
                f"blocks.{i}.norm1.bias": v[src + "layer_norm1.bias"],
                f"blocks.{i}.norm2.weight": v[src + "layer_norm2.weight"],
                f"blocks.{i}.norm2.bias": v[src + "layer_norm2.bias"],
                f"blocks.{i}.attn.qkv.weight": v[src + "self_attn.qkv.weight"],
                f"blocks.{i}.attn.q_bias": bias[:64],
                f"blocks.{i}.attn.v_bias": bias[128:],
                f"blocks.{i}.attn.proj.weight": v[src + "self_attn.projection.weight"],
                f"blocks.{i}.attn.proj.bias": v[src + "self_attn.projection.bias"],
                **{
                    f"blocks.{i}.mlp.{n}.{t}": v[f"{src}mlp.{n}.{t}"]
                    for n in ("fc1", "fc2")
                    for t in ("weight", "bias")
                },
            }
        )
    q = qformer.state_dict()
    seed = {
        "ln_vision.weight": v["post_layernorm.weight"],
        "ln_vision.bias": v["post_layernorm.bias"],
        "query_tokens": rnd(1, 32, 32),
        "Qformer.bert.embeddings.LayerNorm.weight": q["layernorm.weight"],
        "Qformer.bert.embeddings.LayerNorm.bias": q["layernorm.bias"],
        "Qformer.bert.embeddings.position_ids": torch.arange(512).unsqueeze(0),
    }
    for key, value in q.items():
        if key.startswith("encoder.layer."):
            seed[
                "Qformer.bert."
                + key.replace(".attention.attention.", ".attention.self.").replace(
                    ".crossattention.attention.", ".crossattention.self."
                )
            ] = value
    seed.update(
        {
            "encode_task_layer.0.weight": rnd(32, 32),
            "encode_task_layer.0.bias": rnd(32),
            "encode_task_layer.2.weight": rnd(8, 32),
            "encode_task_layer.2.bias": rnd(8),
            "quantize.embedding.weight": rnd(64, 8),
            "decode_task_layer.0.weight": rnd(8, 8),
            "decode_task_layer.0.bias": rnd(8),
            "decode_task_layer.2.weight": rnd(32, 8),
            "decode_task_layer.2.bias": rnd(32),
            "pos_embed_image": rnd(1, 32, 32),
            "pos_embed": rnd(1, 32, 32),
            "image_down.0.weight": rnd(16, 32),
            "image_down.2.weight": rnd(8, 16),
            "image_down.4.weight": rnd(4, 8),
            "distill_image_proj.weight": rnd(24, 128),
            "distill_image_proj.bias": rnd(24),
        }
    )
    for prefix in ("blocks_image.0.", "blocks.0."):  # blocks.* is the unused recon_s branch
        seed.update(
            {
                prefix + "norm1.weight": 1 + rnd(32),
                prefix + "norm1.bias": rnd(32),
                prefix + "norm2.weight": 1 + rnd(32),
                prefix + "norm2.bias": rnd(32),
                prefix + "attn.qkv.weight": rnd(96, 32),
                prefix + "attn.qkv.bias": rnd(96),
                prefix + "attn.proj.weight": rnd(32, 32),
                prefix + "attn.proj.bias": rnd(32),
                prefix + "mlp.fc1.weight": rnd(128, 32),
                prefix + "mlp.fc1.bias": rnd(128),
                prefix + "mlp.fc2.weight": rnd(32, 128),
                prefix + "mlp.fc2.bias": rnd(32),
            }
        )
    torch.save(seed, tmp_path / "seed_quantizer.pt")
    torch.save(eva, tmp_path / "eva_vit_g.pth")
    return seed


def test_release_keys_and_parity_with_blip2(tmp_path):
    vision, qformer = _reference()
    seed = _release_checkpoint(vision, qformer, tmp_path)
    model = SEEDImageTokenizer.from_pretrained(tmp_path / "seed_quantizer.pt", tmp_path / "eva_vit_g.pth", **SMALL)
    assert model.load_report["missing"] == []
    assert {
        "pos_embed",
        "blocks.0.norm1.weight",
        "visual_encoder.blocks.2.norm1.weight",
        "Qformer.bert.embeddings.position_ids",
    } <= set(model.load_report["unexpected"])

    images = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        image_embeds = vision(pixel_values=images).last_hidden_state  # post_layernorm = SEED's ln_vision
        queries = seed["query_tokens"].expand(3, -1, -1)
        causal = torch.tril(torch.ones(3, 1, 32, 32, dtype=torch.bool))
        ref = qformer(query_embeds=queries, attention_mask=causal, encoder_hidden_states=image_embeds).last_hidden_state
        ours = model.qformer(queries, model.ln_vision(model.visual(images)))
        # causality: the first query's output does not depend on later queries
        bidirectional = qformer(query_embeds=queries, encoder_hidden_states=image_embeds).last_hidden_state
    assert (ours - ref).abs().max() < 1e-4
    assert (ours - bidirectional).abs().max() > 1e-3
    z = torch.tanh(ref @ seed["encode_task_layer.0.weight"].t() + seed["encode_task_layer.0.bias"])
    z = z @ seed["encode_task_layer.2.weight"].t() + seed["encode_task_layer.2.bias"]
    ref_codes = torch.cdist(z, seed["quantize.embedding.weight"].expand(3, -1, -1)).argmin(-1)
    codes = model.encode(list(images * model.std + model.mean))  # encode applies CLIP's normalisation itself
    assert torch.equal(torch.stack(codes), ref_codes)
    embeds = model.decode_embeddings(codes)
    assert len(embeds) == 3 and embeds[0].shape == (24,)
    with pytest.raises(RuntimeError, match="attach_unclip"):  # pixels need the second stage
        model.decode(codes)
    assert model.structure.fixed_length == 32 and model.codebook_size == 64


def test_missing_weights_fail_and_name_the_file(tmp_path):
    vision, qformer = _reference()
    seed = _release_checkpoint(vision, qformer, tmp_path)
    found = SEEDImageTokenizer.from_pretrained(tmp_path, **SMALL)  # the folder; eva_vit_g.pth found beside it
    assert found.load_report["missing"] == []
    (tmp_path / "eva_vit_g.pth").rename(tmp_path / "elsewhere.pth")
    with pytest.raises(KeyError, match="eva_vit"):  # the ViT comes separately
        SEEDImageTokenizer.from_pretrained(tmp_path / "seed_quantizer.pt", **SMALL)
    del seed["blocks_image.0.attn.qkv.weight"]
    torch.save(seed, tmp_path / "broken.pt")
    with pytest.raises(KeyError, match=r"broken\.pt.*blocks_image\.0\.attn\.qkv\.weight"):
        SEEDImageTokenizer.from_pretrained(tmp_path / "broken.pt", tmp_path / "elsewhere.pth", **SMALL)


def test_preprocessing_matches_seed(tmp_path):
    from PIL import Image

    Image.new("RGBA", (50, 30), (255, 0, 0, 128)).save(tmp_path / "a.png")
    model = SEEDImageTokenizer(**SMALL).eval()
    x = modality_for(model).read(tmp_path / "a.png")  # bicubic resize to the codec's side, no crop
    assert x.shape == (3, 28, 28)
    # the release's convert("RGB") drops alpha: the stored red stays
    assert torch.allclose(x[:, 14, 14], torch.tensor([255, 0, 0]) / 255, atol=0.02)
    # anygpt's reading composites on white: red at half alpha over white = (255, 128, 128) (Pillow rounds the blend)
    ours = modality_for(SEEDImageTokenizer(**SMALL, preprocess="anygpt")).read(tmp_path / "a.png")
    assert torch.allclose(ours[:, 14, 14], torch.tensor([255, 128, 128]) / 255, atol=0.02)
    # then CLIP normalisation, inside encode
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    with torch.no_grad():
        assert torch.equal(model.encode([x])[0], model.encode_images(((x - mean) / std)[None])[0])
    assert codec_class("image") is SEEDImageTokenizer
