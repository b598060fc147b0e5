"""A release-shaped checkpoint with small random weights: every file a user of the released AnyGPT downloads, in its
real layout and key names, so the path a GPU user takes can run through the real CLI in CI.

    AnyGPT-chat/, AnyGPT-base/         HF LlamaForCausalLM + slow-tokenizer files (transformers 4.34's layout), the
                                       release's added tokens in its order (chat: <-Res->, <-Ins-> last)
    AnyGPT-speech-modules/speechtokenizer/{config.json, ckpt.dev}   the `speechtokenizer` package's model
    AnyGPT-speech-modules/soundstorm/speechtokenizer_soundstorm_mls.pt   AnyGPT's soundstorm.py layout
    seed-tokenizer-2/seed_quantizer.pt, eva_vit_g.pth                 SEED-2 and BLIP-2's EVA ViT key names
    encodec_32khz/                     transformers EncodecModel folder (facebook/encodec_32khz)
    stable-diffusion-2-1-unclip/       a diffusers StableUnCLIPImg2ImgPipeline folder

The vocabulary is the release's (8192 image, 1024 speech, 4 x 2048 music codes) on a small SentencePiece text model;
the networks are narrow and shallow (the EVA ViT keeps one more block than SEED uses, as eva_vit_g.pth does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from tests.generation.release_oracle import spm_model

TEXT_LAYERS = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=4096)
# SpeechTokenizer: the paper's structure, narrow (the `speechtokenizer` package builds it from this config)
SPEECH = dict(n_filters=4, strides=[8, 5, 4, 2], dimension=32, semantic_dimension=16, bidirectional=True,
              dilation_base=2, residual_kernel_size=3, n_residual_layers=1, lstm_layers=1, activation="ELU",
              sample_rate=16000, codebook_size=1024, n_q=8, lambda_distill=0.15, segment_size=48000)
# SoundStorm: AnyGPT's ConformerWrapper with the release's head width (dim_head 128), one head, one layer
STORM = dict(codebook_size=1024, num_quantizers=7, num_semantic_tokens=1024, dim=64, depth=1, heads=1, dim_head=128,
             ff_mult=2, conv_kernel_size=5)
# SEED-2: head widths as the release's (EVA 88, Q-Former/decoder 64), so a loader can read the sizes from shapes
SEED = dict(image_size=28, patch_size=14, vit_width=88, vit_depth=1, vit_heads=1, vit_hidden=128, qformer_width=64,
            qformer_depth=2, qformer_heads=1, qformer_hidden=96, cross_attention_freq=2, num_queries=32,
            codebook_dim=8, n_embed=8192, decode_depth=1, decode_heads=1, down_dims=(16, 8, 4), embed_dim=8)
UNCLIP_EMBED = SEED["embed_dim"]


@dataclass
class ReleaseFiles:
    root: Path
    chat: Path
    base: Path
    speech_modules: Path
    seed_quantizer: Path
    eva_vit: Path
    encodec: Path
    unclip: Path


def write_release_checkpoint(root: str | Path) -> ReleaseFiles:
    root = Path(root)
    files = ReleaseFiles(root, root / "AnyGPT-chat", root / "AnyGPT-base", root / "AnyGPT-speech-modules",
                         root / "seed-tokenizer-2" / "seed_quantizer.pt", root / "eva_vit_g.pth",
                         root / "encodec_32khz", root / "stable-diffusion-2-1-unclip")
    root.mkdir(parents=True, exist_ok=True)
    spm = root / "tokenizer.model"
    spm.write_bytes(spm_model.train())
    write_llama(files.base, spm, instruction_tokens=False, seed=0)
    write_llama(files.chat, spm, instruction_tokens=True, seed=1)
    write_speech_modules(files.speech_modules)
    write_seed(files.seed_quantizer, files.eva_vit)
    write_encodec(files.encodec)
    write_unclip(files.unclip)
    return files


def write_llama(folder: Path, spm: Path, instruction_tokens: bool, seed: int) -> None:
    """An HF LLaMA folder whose tokenizer files are those transformers 4.34 writes for the release's slow tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from anygpt.checkpoints import write_tokenizer_files
    from anygpt.modalities.spec import RELEASE_MODALITIES
    from anygpt.text_tokenizer import SentencePieceTextTokenizer
    from anygpt.vocab import UnifiedVocab

    vocab = UnifiedVocab(SentencePieceTextTokenizer(spm), RELEASE_MODALITIES, instruction_tokens=instruction_tokens)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab.text.vocab_size, bos_token_id=1, eos_token_id=2,
                                         **TEXT_LAYERS))
    model.resize_token_embeddings(len(vocab))  # as the release: text rows, then the added tokens
    model.save_pretrained(folder)
    write_tokenizer_files(vocab, folder)


def write_speech_modules(folder: Path) -> None:
    import speechtokenizer

    from anygpt.modalities.speech.soundstorm import _ANYGPT_CONV_KEYS, SoundStorm

    (folder / "speechtokenizer").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(2)
    model = speechtokenizer.SpeechTokenizer(SPEECH).eval()
    with torch.no_grad():  # codebooks from the encoder's own residuals, so codes vary
        residual = model.encoder(torch.randn(2, 1, 8000) * 0.1)
        residual = residual.transpose(0, 1).reshape(1, residual.shape[1], -1)
        for layer in model.quantizer.vq.layers:
            pick = torch.randint(residual.shape[-1], (layer.codebook_size,))
            layer._codebook.embed.copy_(residual[0, :, pick].T + 1e-3 * torch.randn(layer.codebook_size, 1))
            layer._codebook.inited.fill_(1)
            residual = residual - layer.decode(layer.encode(residual))
    (folder / "speechtokenizer" / "config.json").write_text(json.dumps(SPEECH, indent=2))
    torch.save(model.state_dict(), folder / "speechtokenizer" / "ckpt.dev")
    torch.manual_seed(3)
    storm = SoundStorm(**STORM).state_dict()
    anygpt_layout = {}
    for key, value in storm.items():  # AnyGPT's soundstorm.py: conv module as net1 / ds_conv / net2
        for theirs, ours in _ANYGPT_CONV_KEYS.items():
            key = key.replace(f".conv.{ours}", f".conv.{theirs}")
        anygpt_layout[key] = value
    (folder / "soundstorm").mkdir(parents=True, exist_ok=True)
    torch.save(anygpt_layout, folder / "soundstorm" / "speechtokenizer_soundstorm_mls.pt")


# our SEED parameter name -> the release's (AILab-CVC/SEED's seed_quantizer.pt; BLIP-2's eva_vit_g.pth for visual.*)
_SEED_NAMES = [
    ("visual.patch_embed.", "patch_embed.proj."), ("visual.cls_token", "cls_token"), ("visual.pos_embed", "pos_embed"),
    ("visual.blocks.", "blocks."), ("codebook.weight", "quantize.embedding.weight"),
    ("qformer.embed_norm.", "Qformer.bert.embeddings.LayerNorm."),
]
_QFORMER_NAMES = [
    ("self_attn.q.", "attention.self.query."), ("self_attn.k.", "attention.self.key."),
    ("self_attn.v.", "attention.self.value."), ("self_attn.o.", "attention.output.dense."),
    ("self_norm.", "attention.output.LayerNorm."), ("cross_attn.q.", "crossattention.self.query."),
    ("cross_attn.k.", "crossattention.self.key."), ("cross_attn.v.", "crossattention.self.value."),
    ("cross_attn.o.", "crossattention.output.dense."), ("cross_norm.", "crossattention.output.LayerNorm."),
    ("fc1.", "intermediate_query.dense."), ("fc2.", "output_query.dense."), ("ffn_norm.", "output_query.LayerNorm."),
]


def _seed_release_name(key: str) -> str:
    if key.startswith("qformer.layers."):
        _, _, index, rest = key.split(".", 3)
        for ours, theirs in _QFORMER_NAMES:
            if rest.startswith(ours):
                return f"Qformer.bert.encoder.layer.{index}.{theirs}{rest[len(ours):]}"
    for ours, theirs in _SEED_NAMES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return key


def write_seed(seed_quantizer: Path, eva_vit: Path) -> None:
    """``seed_quantizer.pt`` (Q-Former, codebook, decoder side, plus keys of branches the tokenizer does not use) and
    ``eva_vit_g.pth`` (the ViT without prefix, one block more than SEED uses)."""
    from anygpt.modalities.image.seed import SEEDImageTokenizer, seed_key_to_ours

    torch.manual_seed(4)
    model = SEEDImageTokenizer(**SEED)
    with torch.no_grad():  # spread every tensor (norms start at 1, biases and queries at 0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    seed, eva = {}, {}
    for key, value in model.state_dict().items():
        name = _seed_release_name(key)
        assert seed_key_to_ours(name if not key.startswith("visual.") else "visual_encoder." + name) == key, key
        (eva if key.startswith("visual.") else seed)[name] = value.clone()
    depth = SEED["vit_depth"]
    for key in [k for k in eva if k.startswith(f"blocks.{depth - 1}.")]:  # the 40th block BLIP-2 drops
        eva[key.replace(f"blocks.{depth - 1}.", f"blocks.{depth}.")] = eva[key].clone()
    seed["Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]  # unused by the image branch
    seed["blocks.0.norm1.weight"] = torch.ones(SEED["qformer_width"])  # the unused recon_s branch
    seed_quantizer.parent.mkdir(parents=True, exist_ok=True)
    torch.save(seed, seed_quantizer)
    torch.save(eva, eva_vit)


def write_encodec(folder: Path) -> None:
    """facebook/encodec_32khz's structure (ratios 8 5 4 4, 4 codebooks of 2048 at 50 Hz), narrow."""
    from transformers import EncodecConfig, EncodecFeatureExtractor, EncodecModel

    torch.manual_seed(5)
    config = EncodecConfig(sampling_rate=32000, num_filters=4, upsampling_ratios=[8, 5, 4, 4], codebook_size=2048,
                           hidden_size=16, num_lstm_layers=1, target_bandwidths=[2.2], use_causal_conv=False,
                           norm_type="weight_norm", pad_mode="reflect", use_conv_shortcut=False, normalize=False)
    model = EncodecModel(config).eval()
    with torch.no_grad():  # codebooks from real latent frames (transformers starts them at zero)
        t = torch.arange(16000) / 32000
        frames = model.encoder(torch.sin(2 * torch.pi * 220 * t)[None, None] * 0.3).transpose(1, 2).reshape(-1, 16)
        for q, layer in enumerate(model.quantizer.layers):
            layer.codebook.embed.copy_(frames[torch.randint(len(frames), (2048,))] * 0.5**q
                                       + 0.01 * torch.randn(2048, 16))
    model.save_pretrained(folder)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=32000).save_pretrained(folder)


def write_unclip(folder: Path) -> None:
    """A StableUnCLIPImg2ImgPipeline folder (diffusers) taking SEED's image embeddings."""
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

    torch.manual_seed(6)
    embed = UNCLIP_EMBED
    work = folder.parent / "unclip-tokenizer"
    work.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>", *chars, *[c + "</w>" for c in chars]])}
    (work / "vocab.json").write_text(json.dumps(vocab))
    (work / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(work / "vocab.json"), str(work / "merges.txt"), model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=1, num_attention_heads=2, projection_dim=embed,
                                                max_position_embeddings=77, bos_token_id=0, eos_token_id=1))
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=16, intermediate_size=32,
                                                                   num_hidden_layers=1, num_attention_heads=2,
                                                                   projection_dim=embed, image_size=32, patch_size=8))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=8, class_embed_type="projection",
                                projection_class_embeddings_input_dim=embed * 2)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=8)
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32), image_encoder=image_encoder,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=embed),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"), tokenizer=tokenizer,
        text_encoder=text_encoder, unet=unet, scheduler=DDIMScheduler(prediction_type="v_prediction"), vae=vae)
    pipe.save_pretrained(folder)
