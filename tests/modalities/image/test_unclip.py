"""SD 2.1 unCLIP decoding of SEED embeddings, with a tiny random pipeline built from configs (no download)."""

import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers")


def _tiny_pipeline(directory):
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(0)
    embed = 8  # the image-embedding width (1024 for the real model)
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>", *chars, *[c + "</w>" for c in chars]])}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            projection_dim=embed,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
        )
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            projection_dim=embed,
            image_size=32,
            patch_size=8,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=8,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=embed * 2,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        norm_num_groups=8,
    )
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=image_encoder,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=embed),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        scheduler=DDIMScheduler(prediction_type="v_prediction"),
        vae=vae,
    )
    pipe.save_pretrained(directory / "pipeline")
    return directory / "pipeline"


@pytest.mark.slow
def test_seed_embeddings_to_pixels(tmp_path):
    from anygpt.modalities.image import SEEDImageTokenizer
    from anygpt.modalities.image.unclip import UnCLIPDecoder
    from anygpt.modalities.registry import modality_for

    directory = _tiny_pipeline(tmp_path)
    decoder = UnCLIPDecoder.from_pretrained(directory)
    embeds = torch.randn(2, 8)
    images = decoder(embeds, num_inference_steps=2, height=16, width=16, seed=0)
    assert len(images) == 2 and images[0].shape == (3, 16, 16)
    assert 0 <= images[0].min() and images[0].max() <= 1
    again = decoder(embeds, num_inference_steps=2, height=16, width=16, seed=0)
    assert torch.allclose(images[0], again[0])  # seeded
    other = decoder(-embeds, num_inference_steps=2, height=16, width=16, seed=0)
    assert not torch.allclose(images[0], other[0])  # the embedding conditions the image

    seed = SEEDImageTokenizer(
        image_size=28,
        vit_width=32,
        vit_depth=1,
        vit_heads=2,
        vit_hidden=32,
        qformer_width=16,
        qformer_depth=2,
        qformer_heads=2,
        qformer_hidden=32,
        codebook_dim=4,
        n_embed=16,
        decode_depth=1,
        decode_heads=2,
        down_dims=(8, 4),
        embed_dim=8,
    )
    codes = [torch.arange(32) % 16]
    with pytest.raises(RuntimeError, match="attach_unclip"):
        seed.decode(codes)
    seed.attach_unclip(directory)
    # unCLIP is decode's second stage; its settings come as context, keys it does not use are ignored
    picture = seed.decode(codes, num_inference_steps=2, height=16, width=16, seed=0, voice="ignored.wav")[0]
    assert picture.shape == (3, 16, 16)
    embedding = seed.decode_embeddings(codes)[0]
    assert torch.allclose(picture, decoder([embedding], num_inference_steps=2, height=16, width=16, seed=0)[0])
    modality_for(seed).write(picture, tmp_path / "out.png")
    assert (tmp_path / "out.png").stat().st_size > 0


def test_missing_pipeline_directory_is_explained(tmp_path):
    from anygpt.modalities.image.unclip import UnCLIPDecoder

    with pytest.raises(FileNotFoundError, match="model_index.json"):
        UnCLIPDecoder.from_pretrained(tmp_path)
