"""Tokenizer ceilings: how much of each modality survives the shipped tiny tokenizers, on the demo corpus' test split.

What the LM can reach on a generation task is bounded by what its tokenizer keeps, so these are the ceilings of the
demo benchmarks, each scored by the same shipped judge the benchmarks use and next to a floor a useless tokenizer
would reach:

- speech (VCTK and LibriSpeech test-clean, real audio): ASR-judge WER of the real audio (the judge's own ceiling), of
  the all-level codec reconstruction, of level-1 tokens -> SoundStorm -> codec (unprompted: the tokens' content alone;
  prompted with another utterance of the same speaker: what zero-shot TTS can reach), of level 1 decoded alone (what
  SoundStorm adds); speaker similarity of the re-syntheses to that prompt; level-1 content: a majority phone probe
  (each code -> the phone it most often marks on train utterances) on test frames, the tokenizer's distillation head,
  the majority-phone floor, codes in use;
- music (MusicCaps-style test clips): CLAP-judge score of the codec's reconstructions with the clips' captions, of the
  real clips (the ceiling), and of reconstructions with shuffled captions (the floor);
- image (Karpathy test split): PSNR of reconstructions (floor: each image's mean colour), CLIP-judge score of the
  reconstructions with the images' captions, as a ratio to that of the real images (floor: shuffled captions).

Every figure carries a 95% bootstrap interval over items (corpus WER and ratios are recomputed on each resample).

    python -m benchmarks.perf.tokenizer_ceilings [--data data/demo] [--limit N] [--out runs/perf/ceilings.json]
        [--only speech music image speech-levels] [--speech PATH --soundstorm PATH --music PATH --image PATH]
    (tokenizer folders default to the shipped ones, anygpt-assets:tokenizers/NAME)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from anygpt.assets import asset_path as resolve_asset
from anygpt.data.demo.build import load_manifest
from anygpt.data.sources.coco import read_coco_karpathy
from anygpt.data.sources.librispeech import read_librispeech
from anygpt.data.sources.musiccaps import read_musiccaps
from anygpt.data.sources.vctk import read_vctk
from anygpt.media import read_audio_with_rate
from anygpt.modalities.image import TinyImageTokenizer
from anygpt.modalities.music import SEANetCodec
from anygpt.modalities.registry import load_modality
from anygpt.modalities.speech import SpeechTokenizerCodec
from anygpt.modalities.speech.data import frame_phones, normalize_phone
from anygpt.modalities.speech.tiny import TINY_PHONES
from benchmarks.judges import load_judge
from benchmarks.metrics import WordErrorRate
from benchmarks.metrics.clip_score import to_pil
from benchmarks.metrics.speaker_similarity import ResemblyzerEncoder
from benchmarks.stats import bootstrap, mean_of, ratio_of

# -- statistics (benchmarks.stats: the benchmarks' bootstrap, corpus rates recomputed per redraw) -----------------


def mean_with_interval(values: Sequence[float], seed: int = 0) -> dict[str, Any]:
    return {**bootstrap(mean_of(values), len(values), seed=seed).to_dict(), "n": len(values)}


def ratio_with_interval(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """sum(a) / sum(b) over paired items: a corpus-level rate (corpus WER, frame accuracy) or a ratio of means."""
    return {**bootstrap(ratio_of(a, b), len(a), seed=seed).to_dict(), "n": len(a)}


def word_errors(hypothesis: str, reference: str) -> tuple[int, int]:
    """(errors, reference words) of one utterance, with the benchmarks' WER (Whisper normalisation + jiwer)."""
    metric = WordErrorRate()
    metric.update([hypothesis], [reference])
    return int(metric.errors), int(metric.words)


def wer_with_interval(hypotheses: Sequence[str], references: Sequence[str], seed: int = 0) -> dict[str, Any]:
    counts = [word_errors(h, r) for h, r in zip(hypotheses, references, strict=True)]
    return ratio_with_interval([e for e, _ in counts], [w for _, w in counts], seed)


# -- speech ----------------------------------------------------------------------------------------------------------


def _phone_labels(alignment: dict | None, frames: int, frame_seconds: float, phones: Sequence[str]) -> torch.Tensor:
    events = [(normalize_phone(str(p)), float(t)) for p, t in (alignment or {}).get("phonemes", [])]
    return frame_phones(events, frames, frame_seconds, phones)


def speech_ceilings(root: Path, tokenizer: str, soundstorm: str, limit: int | None, probe_files: int, seed: int,
                    progress: bool) -> dict[str, Any]:
    modality = load_modality(tokenizer, SpeechTokenizerCodec, soundstorm=soundstorm)
    speech = modality.codec
    phones = list(TINY_PHONES)  # the classes the demo's level 1 is distilled to
    distilled = speech.config.semantic_dimension == len(phones)  # transform outputs logits of these phones
    prompt_seconds = speech.prompt_seconds
    frame_seconds = speech.config.hop_length / speech.sample_rate
    judge = load_judge("asr")
    speakers = ResemblyzerEncoder()
    rate = speech.sample_rate

    sets = {"vctk": list(read_vctk(root / "vctk"))[:limit],
            "test-clean": list(read_librispeech(root / "librispeech", "test-clean"))[:limit]}

    # level-1 code -> phone table from train utterances (the probe), and the train codes in use
    train = list(read_librispeech(root / "librispeech", "train-clean-100"))
    train = random.Random(seed).sample(train, min(probe_files, len(train)))
    table: dict[int, Counter] = defaultdict(Counter)
    for utt in tqdm(train, desc="speech: probe (train)", disable=not progress):
        codes = speech.encode([modality.read(utt.path)])[0]
        labels = _phone_labels(utt.alignment, len(codes), frame_seconds, phones)
        for c, p in zip(codes.tolist(), labels.tolist(), strict=True):
            table[c][p] += 1
    mapping = {c: counts.most_common(1)[0][0] for c, counts in table.items()}
    prior = sum(table.values(), Counter()).most_common(1)[0][0]

    results: dict[str, Any] = {"tokenizer": str(tokenizer), "soundstorm": str(soundstorm), "judge": judge.description,
                               "frame_rate": speech.frame_rate, "codebook_size": speech.codebook_size,
                               "levels": speech.config.n_q, "probe_train_utterances": len(train),
                               "train_codes_in_use": len(table) / speech.codebook_size}
    for name, items in sets.items():
        by_speaker: dict[str, list[int]] = defaultdict(list)
        for i, utt in enumerate(items):
            by_speaker[utt.speaker].append(i)
        rows = defaultdict(list)
        used: Counter = Counter()
        for i, utt in enumerate(tqdm(items, desc=f"speech: {name}", disable=not progress)):
            wav = modality.read(utt.path)
            codes = speech.encode_all_levels([wav])[0]
            same = by_speaker[utt.speaker]
            prompt_item = items[same[(same.index(i) + 1) % len(same)]]  # the next utterance of the same speaker
            prompt = modality.read(prompt_item.path)
            prompt = prompt if prompt_seconds is None else prompt[:, : int(prompt_seconds * rate)]
            torch.manual_seed(seed + i)
            unprompted = speech.decode([codes[0]])[0]
            torch.manual_seed(seed + i)
            prompted = speech.decode([codes[0]], voice=prompt)[0]
            rows["real"].append(wav)
            rows["all_levels"].append(speech.decode([codes])[0])
            rows["level1_alone"].append(speech.decode([codes[:1]])[0])  # no acoustic levels at all
            rows["level1_soundstorm"].append(unprompted)
            rows["level1_soundstorm_prompted"].append(prompted)
            rows["prompt"].append(prompt)
            # level-1 content
            labels = _phone_labels(utt.alignment, codes.shape[1], frame_seconds, phones)
            guess = torch.tensor([mapping.get(c, prior) for c in codes[0].tolist()])
            rows["probe_correct"].append(int((guess == labels).sum()))
            rows["prior_correct"].append(int((labels == prior).sum()))
            rows["frames"].append(len(labels))
            if distilled:
                with torch.inference_mode():
                    level1 = speech.model.quantizer.decode(codes[:1, None])  # [1, D, F]
                    logits = speech.model.transform(level1.transpose(1, 2))[0]
                rows["head_correct"].append(int((logits.argmax(-1) == labels).sum()))
            used.update(codes[0].tolist())
        texts = [utt.text for utt in items]
        out: dict[str, Any] = {"n": len(items), "speakers": len(by_speaker)}
        wer = {}
        for kind in ("real", "all_levels", "level1_soundstorm", "level1_soundstorm_prompted", "level1_alone"):
            hyps = judge.transcribe([w.reshape(-1) for w in rows[kind]], rate)
            wer[kind] = wer_with_interval(hyps, texts, seed)
            wer[kind]["examples"] = [[r, h] for r, h in zip(texts[:3], hyps[:3], strict=True)]
        wer["empty_transcript"] = {"value": 1.0, "note": "saying nothing: every reference word is deleted"}
        out["judge_wer"] = wer
        prompt_emb = [speakers.embed(p.reshape(-1), rate) for p in rows["prompt"]]
        sims: dict[str, Any] = {kind: mean_with_interval(
            [float(speakers.embed(w.reshape(-1), rate) @ e) for w, e in zip(rows[kind], prompt_emb, strict=True)], seed)
            for kind in ("real", "level1_soundstorm_prompted", "level1_soundstorm", "all_levels")}
        sims["note"] = ("resemblyzer cosine to the voice prompt (another utterance of the same speaker); "
                        "level1_soundstorm (no prompt, a random voice) is the floor cloning must beat")
        out["speaker_similarity_to_prompt"] = sims
        probe = {"majority_probe_accuracy": ratio_with_interval(rows["probe_correct"], rows["frames"], seed),
                 "majority_phone_baseline": ratio_with_interval(rows["prior_correct"], rows["frames"], seed),
                 "codes_in_use": len(used) / speech.codebook_size, "codes_in_use_count": len(used),
                 "code_perplexity": _perplexity(used)}
        if rows["head_correct"]:
            probe["distillation_head_accuracy"] = ratio_with_interval(rows["head_correct"], rows["frames"], seed)
        out["level1_content"] = probe
        results[name] = out
    return results


def _previous_frame(codes: torch.Tensor) -> torch.Tensor:
    return torch.cat([codes[:, :1], codes[:, :-1]], dim=1)  # the first frame is its own predecessor


def _conditional_nats(given_fit: torch.Tensor, codes_fit: torch.Tensor, given: torch.Tensor, codes: torch.Tensor,
                      prior: torch.Tensor, smoothing: float) -> float:
    bins = prior.shape[0]
    joint = torch.zeros(bins, bins, dtype=torch.float64)
    joint.index_put_((given_fit, codes_fit), torch.ones(given_fit.shape[0], dtype=torch.float64), accumulate=True)
    conditional = (joint + smoothing * prior) / (joint.sum(1, keepdim=True) + smoothing)
    return float(-conditional[given, codes].log().mean())


def level_cross_entropies(train: Sequence[torch.Tensor], test: Sequence[torch.Tensor], bins: int,
                          smoothings: Sequence[float] = (1, 4, 16, 64, 256, 1024)) -> list[dict[str, float]]:
    """How predictable each RVQ level is, in nats per code on ``test`` (``[levels, frames]`` per utterance), by count
    models fitted on ``train``: uniform (ln bins), the level's marginal, the level given the same frame's level-1 code,
    and given the same level's code one frame earlier. Conditional counts are smoothed towards the marginal; the
    pseudo-count is chosen on the last fifth of ``train`` (fitted on the rest), then the counts are refitted on all
    of it. The test codes are never counted, so an uninformative context scores about the marginal, not below it.

    A level these simple contexts predict better than its marginal is one a SoundStorm scoring at the marginal has
    not learned; one they do not predict may need more context, or carry little that level 1 implies."""
    cut = max(1, len(train) * 4 // 5)
    parts = {"fit": list(train[:cut]), "tune": list(train[cut:]) or list(train[:1]), "all": list(train),
             "test": list(test)}
    codes = {k: torch.cat(v, dim=1) for k, v in parts.items()}  # [levels, frames]
    previous = {k: torch.cat([_previous_frame(c) for c in v], dim=1) for k, v in parts.items()}
    def marginal_of(split: str, q: int) -> torch.Tensor:
        counts = torch.bincount(codes[split][q], minlength=bins).double() + 0.5
        return counts / counts.sum()

    out = []
    for q in range(codes["all"].shape[0]):
        marginal = marginal_of("all", q)
        row: dict[str, float] = {"level": q + 1, "uniform": float(np.log(bins)),
                                 "marginal": float(-marginal[codes["test"][q]].log().mean())}
        contexts = {"given_previous_frame": {k: p[q] for k, p in previous.items()}}
        if q > 0:
            contexts["given_level1"] = {k: c[0] for k, c in codes.items()}
        for name, given in contexts.items():
            best = min(smoothings, key=lambda a, g=given, q=q: _conditional_nats(
                g["fit"], codes["fit"][q], g["tune"], codes["tune"][q], marginal_of("fit", q), a))
            row[name] = _conditional_nats(given["all"], codes["all"][q], given["test"], codes["test"][q], marginal,
                                          best)
            row[f"{name}_smoothing"] = float(best)
        out.append(row)
    return out


def speech_level_predictability(root: Path, tokenizer: str, limit: int | None, train_files: int, seed: int,
                                progress: bool) -> dict[str, Any]:
    """`level_cross_entropies` of the speech tokenizer: train utterances fit the counts, test-clean and VCTK (voices
    never heard in training) are scored."""
    modality = load_modality(tokenizer, SpeechTokenizerCodec)
    speech = modality.codec
    train = list(read_librispeech(root / "librispeech", "train-clean-100"))
    train = random.Random(seed).sample(train, min(train_files, len(train)))
    test = (list(read_vctk(root / "vctk"))[:limit] +
            list(read_librispeech(root / "librispeech", "test-clean"))[:limit])

    def encode(items: list, desc: str) -> list[torch.Tensor]:
        return [speech.encode_all_levels([modality.read(u.path)])[0]
                for u in tqdm(items, desc=desc, disable=not progress)]

    train_codes, test_codes = encode(train, "speech levels: train"), encode(test, "speech levels: test")
    return {"tokenizer": str(tokenizer), "train_utterances": len(train), "test_utterances": len(test),
            "test_frames": int(sum(c.shape[1] for c in test_codes)),
            "nats_per_code": level_cross_entropies(train_codes, test_codes, speech.codebook_size)}


def _perplexity(counts: Counter) -> float:
    p = np.array(list(counts.values()), dtype=np.float64)
    p /= p.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


# -- music -----------------------------------------------------------------------------------------------------------


def music_ceilings(root: Path, codec_path: str, limit: int | None, seed: int, progress: bool) -> dict[str, Any]:
    music = load_modality(codec_path, SEANetCodec)
    codec = music.codec
    clap = load_judge("clap")
    clips = list(read_musiccaps(root / "musiccaps" / "musiccaps.csv", None, "test"))[:limit]
    real, recon, used = [], [], [Counter() for _ in range(codec.n_q)]
    for clip in tqdm(clips, desc="music", disable=not progress):
        wav, sr = read_audio_with_rate(clip.path)
        real.append((wav, sr))
        codes = codec.encode([music.read(clip.path)])[0]
        for q in range(codec.n_q):
            used[q].update(codes[q].tolist())
        recon.append(codec.decode([codes])[0])
    captions = [c.caption for c in clips]
    text = clap.embed_text(captions)
    real_emb = torch.cat([clap.embed_audio([w], sr) for w, sr in real])
    recon_emb = clap.embed_audio(recon, codec.sample_rate)
    perm = _derangement(len(clips), seed)
    cos_real = (real_emb * text).sum(-1).tolist()
    cos_recon = (recon_emb * text).sum(-1).tolist()
    return {
        "codec": str(codec_path), "judge": clap.description, "n": len(clips),
        "tokens_per_second": codec.n_q * codec.frame_rate,
        "clap_reconstruction": mean_with_interval(cos_recon, seed),
        "clap_real": mean_with_interval(cos_real, seed),
        "clap_reconstruction_over_real": ratio_with_interval(cos_recon, cos_real, seed),
        "clap_reconstruction_shuffled_captions": mean_with_interval((recon_emb * text[perm]).sum(-1).tolist(), seed),
        "codes_in_use": [len(u) / codec.bins for u in used],
    }


def _derangement(n: int, seed: int) -> list[int]:
    """Each item paired with another item (a random cyclic shift of a random order)."""
    if n < 2:
        return list(range(n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    perm = [0] * n
    for k, i in enumerate(order):
        perm[i] = order[(k + 1) % n]
    return perm


# -- image -----------------------------------------------------------------------------------------------------------


def image_ceilings(root: Path, tokenizer_path: str, limit: int | None, seed: int, progress: bool) -> dict[str, Any]:
    from PIL import Image

    image = load_modality(tokenizer_path, TinyImageTokenizer)
    tokenizer = image.codec
    clip = load_judge("clip")
    items = [r for r in read_coco_karpathy(root / "coco" / "dataset_coco.json", None, {"test"}) if r.captions][:limit]
    psnr, flat_psnr, real_pil, recon_pil, used = [], [], [], [], Counter()
    batch = 64
    for start in tqdm(range(0, len(items), batch), desc="image", disable=not progress):
        chunk = items[start : start + batch]
        x = torch.stack([image.read(r.path) for r in chunk])
        codes = tokenizer.encode(list(x))
        y = torch.stack(tokenizer.decode(codes))
        for c in codes:
            used.update(c.tolist())
        mse = (y - x).pow(2).mean((1, 2, 3)).clamp_min(1e-10)
        flat = (x.mean((2, 3), keepdim=True) - x).pow(2).mean((1, 2, 3)).clamp_min(1e-10)
        psnr += (10 * torch.log10(1 / mse)).tolist()
        flat_psnr += (10 * torch.log10(1 / flat)).tolist()
        real_pil += [Image.open(r.path).convert("RGB") for r in chunk]
        recon_pil += [to_pil(im) for im in y]
    captions = [r.captions for r in items]
    # each image against each of its captions, averaged per image
    flat_texts = [t for caps in captions for t in caps]
    owner = torch.tensor([i for i, caps in enumerate(captions) for _ in caps])
    text = clip.embed_texts(flat_texts)

    def per_image(images: list) -> list[float]:
        emb = torch.cat([clip.embed_images(images[s : s + 256]) for s in range(0, len(images), 256)])
        cos = (emb[owner] * text).sum(-1)
        return torch.zeros(len(images)).index_add_(0, owner, cos).div_(torch.bincount(owner).float()).tolist()

    real_score, recon_score = per_image(real_pil), per_image(recon_pil)
    perm = _derangement(len(items), seed)
    shuffled = per_image([real_pil[j] for j in perm])
    return {
        "tokenizer": str(tokenizer_path), "judge": clip.description, "n": len(items),
        "tokens_per_image": tokenizer.tokens_per_image,
        "psnr_db": mean_with_interval(psnr, seed),
        "psnr_db_mean_colour_floor": mean_with_interval(flat_psnr, seed),
        "clip_reconstruction": mean_with_interval(recon_score, seed),
        "clip_real": mean_with_interval(real_score, seed),
        "clip_reconstruction_over_real": ratio_with_interval(recon_score, real_score, seed),
        "clip_shuffled_captions_floor": mean_with_interval(shuffled, seed),
        "codes_in_use": len(used) / tokenizer.codebook_size,
    }


# -- entry point -----------------------------------------------------------------------------------------------------


def measure(data: Path, only: Sequence[str] = ("speech", "music", "image"), limit: int | None = None,
            speech: str = "anygpt-assets:tokenizers/speech", soundstorm: str = "anygpt-assets:tokenizers/soundstorm",
            music: str = "anygpt-assets:tokenizers/music", image: str = "anygpt-assets:tokenizers/image",
            probe_files: int = 300, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """All ceilings as one JSON-able dict (``limit`` caps the items of each evaluated set)."""
    manifest = load_manifest(data) or {}
    out: dict[str, Any] = {"data": str(data), "corpus_version": manifest.get("version"),
                           "corpus_content_hash": manifest.get("content_hash"), "limit": limit, "seed": seed}
    start = time.perf_counter()
    if "image" in only:
        out["image"] = image_ceilings(data, str(resolve_asset(image)), limit, seed, progress)
    if "music" in only:
        out["music"] = music_ceilings(data, str(resolve_asset(music)), limit, seed, progress)
    if "speech-levels" in only:
        out["speech_levels"] = speech_level_predictability(data, str(resolve_asset(speech)), limit, probe_files, seed,
                                                           progress)
    if "speech" in only:
        out["speech"] = speech_ceilings(data, str(resolve_asset(speech)), str(resolve_asset(soundstorm)), limit,
                                        probe_files, seed, progress)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def summary(result: dict[str, Any]) -> str:
    """The headline figures, one line each."""

    def f(entry: dict) -> str:
        lo, hi = entry["interval"]
        return f"{entry['value']:.3f} [{lo:.3f}, {hi:.3f}]"

    lines = []
    if "speech" in result:
        for name in ("vctk", "test-clean"):
            s = result["speech"][name]
            w = s["judge_wer"]
            lines.append(f"speech {name} (n={s['n']}): judge WER real {f(w['real'])}, all levels {f(w['all_levels'])}, "
                         f"level 1 -> SoundStorm {f(w['level1_soundstorm'])} (prompted "
                         f"{f(w['level1_soundstorm_prompted'])}; level 1 alone {f(w['level1_alone'])})")
            c = s["level1_content"]
            lines.append(f"speech {name}: phone probe {f(c['majority_probe_accuracy'])} (majority phone "
                         f"{c['majority_phone_baseline']['value']:.3f}), codes in use {c['codes_in_use_count']} of "
                         f"{result['speech']['codebook_size']}; speaker sim. to prompt: prompted "
                         f"{f(s['speaker_similarity_to_prompt']['level1_soundstorm_prompted'])}, unprompted "
                         f"{f(s['speaker_similarity_to_prompt']['level1_soundstorm'])}")
    if "speech_levels" in result:
        for row in result["speech_levels"]["nats_per_code"]:
            lines.append(f"speech level {row['level']}: nats/code uniform {row['uniform']:.2f}, marginal "
                         f"{row['marginal']:.2f}, given level 1 {row.get('given_level1', float('nan')):.2f}, given the "
                         f"previous frame {row['given_previous_frame']:.2f}")
    if "music" in result:
        m = result["music"]
        lines.append(f"music (n={m['n']}): CLAP reconstruction {f(m['clap_reconstruction'])}, real {f(m['clap_real'])}"
                     f", ratio {f(m['clap_reconstruction_over_real'])}, shuffled captions "
                     f"{f(m['clap_reconstruction_shuffled_captions'])}")
    if "image" in result:
        i = result["image"]
        lines.append(f"image (n={i['n']}): PSNR {f(i['psnr_db'])} dB (mean colour {f(i['psnr_db_mean_colour_floor'])})"
                     f", CLIP reconstruction {f(i['clip_reconstruction'])} / real {f(i['clip_real'])} = "
                     f"{f(i['clip_reconstruction_over_real'])}, shuffled {f(i['clip_shuffled_captions_floor'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/demo"), help="the demo corpus root")
    parser.add_argument("--only", nargs="+", default=["speech", "music", "image"],
                        choices=["speech", "speech-levels", "music", "image"],
                        help="speech-levels: how predictable each RVQ level is from level 1 / the previous frame "
                             "(what SoundStorm can learn), not part of the default set")
    parser.add_argument("--limit", type=int, default=None, help="at most N items per evaluated set")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    for name, what in [("speech", "speech tokenizer"), ("soundstorm", "SoundStorm"), ("music", "music codec"),
                       ("image", "image tokenizer")]:
        parser.add_argument(f"--{name}", default=f"anygpt-assets:tokenizers/{name}",
                            help=f"{what} folder (default: the shipped one)")
    parser.add_argument("--probe-files", type=int, default=300, help="train utterances that fit the phone probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = measure(args.data, args.only, args.limit, args.speech, args.soundstorm, args.music, args.image,
                     args.probe_files, args.seed)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    print(summary(result))


if __name__ == "__main__":
    main()
