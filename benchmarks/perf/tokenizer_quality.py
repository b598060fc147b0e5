"""Reconstruction quality and codebook usage of the shipped tiny tokenizers on a corpus split.

Images: PSNR (torchmetrics) of decode(encode(x)) against x, next to the PSNR of the per-image mean colour (the
reference a tokenizer that learned nothing would reach). Music: SI-SNR and multi-scale log-mel L1, next to the same
numbers for silence. Codebook usage: perplexity and fraction of entries used over the whole split.

    python benchmarks/perf/tokenizer_quality.py --coco data/demo/coco --musiccaps data/demo/musiccaps
"""

from __future__ import annotations

import argparse

import torch


def _usage(codes: torch.Tensor, size: int) -> str:
    counts = torch.bincount(codes.reshape(-1), minlength=size).float()
    p = counts / counts.sum()
    perplexity = torch.exp(-(p * p.clamp_min(1e-12).log()).sum())
    return f"perplexity {perplexity:.1f} / {size}, used {(counts > 0).float().mean():.1%}"


def images(root: str, split: str, limit: int) -> None:
    from torchmetrics.functional.image import peak_signal_noise_ratio as psnr

    from anygpt.modalities.image import TinyImageTokenizer
    from anygpt.modalities.image.data import find_images
    from anygpt.modalities.registry import modality_for

    model = TinyImageTokenizer.from_pretrained()
    image = modality_for(model)
    x = torch.stack([image.read(f) for f in find_images(root, split=split)[:limit]])
    codes = torch.stack(model.encode(list(x)))
    recon = torch.stack(model.decode(list(codes)))
    flat = x.mean((2, 3), keepdim=True).expand_as(x)
    print(
        f"image  {len(x)} {split} images, {model.tokens_per_image} tokens each: "
        f"PSNR {psnr(recon, x, data_range=1.0):.2f} dB "
        f"(mean-colour reference {psnr(flat, x, data_range=1.0):.2f} dB); {_usage(codes, model.codebook_size)}"
    )


def music(root: str, split: str, limit: int) -> None:
    from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio as si_snr

    from anygpt.modalities.music import TinyMusicCodec
    from anygpt.modalities.music.data import find_clips
    from anygpt.modalities.music.losses import MultiScaleMelLoss
    from anygpt.modalities.registry import modality_for

    model = TinyMusicCodec.from_pretrained()
    music = modality_for(model)
    wavs = [music.read(f)[0] for f in find_clips(root, split=split)[:limit]]
    codes = model.encode(wavs)
    recon = model.decode(codes)
    mel = MultiScaleMelLoss(model.sample_rate)
    n = min(w.numel() for w in wavs)
    x, y = torch.stack([w[:n] for w in wavs]), torch.stack([r[:n] for r in recon])
    tokens_s = model.n_q * model.frame_rate
    print(
        f"music  {len(wavs)} {split} clips, {tokens_s:.0f} tokens/s: SI-SNR {si_snr(y, x).mean():.2f} dB, mel-L1 "
        f"{mel(y, x):.3f} (silence: mel-L1 {mel(torch.zeros_like(x) + 1e-4 * torch.randn_like(x), x):.3f}); "
        + "; ".join(f"q{q}: {_usage(torch.cat([c[q] for c in codes]), model.bins)}" for q in range(model.n_q))
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--coco", default="data/demo/coco")
    parser.add_argument("--musiccaps", default="data/demo/musiccaps")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with torch.inference_mode():
        images(args.coco, args.split, args.limit)
        music(args.musiccaps, args.split, args.limit)
