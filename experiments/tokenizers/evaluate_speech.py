"""Evaluate a trained speech tokenizer + SoundStorm on a LibriSpeech-style tree with alignment sidecars.

Reports (JSON on stdout):
- reconstruction: log-mel L1 distance and GE2E (resemblyzer) speaker similarity of decoded-from-8-levels vs original;
- content of level 1: held-out phone accuracy of (a) a majority probe (each level-1 code -> the phone it most often
  co-occurs with on train), (b) the tokenizer's own distillation head, against the majority-phone baseline;
- voice cloning: SoundStorm output from the level-1 codes of a held-out utterance with a prompt of another speaker;
  resemblyzer similarity to the prompt speaker vs. to the other speakers (and the same for unprompted output).

    python experiments/tokenizers/evaluate_speech.py --root data/demo/librispeech \
        --tokenizer anygpt-assets:tokenizers/speech --soundstorm anygpt-assets:tokenizers/soundstorm
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from anygpt.modalities.registry import load_modality
from anygpt.modalities.speech import SoundStorm, SpeechTokenizerCodec
from anygpt.modalities.speech.data import find_audio, frame_phones, load_alignments
from anygpt.modalities.speech.tiny import TINY_PHONES


def speaker_of(path: Path) -> str:
    return path.stem.split("-")[0]


def log_mel_distance(a: torch.Tensor, b: torch.Tensor, sample_rate: int) -> float:
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=256, n_mels=80)
    n = min(a.shape[-1], b.shape[-1])
    return float((mel(a[..., :n]).clamp(min=1e-5).log() - mel(b[..., :n]).clamp(min=1e-5).log()).abs().mean())


class SpeakerEncoder:
    def __init__(self) -> None:
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder("cpu", verbose=False)

    def __call__(self, wav: torch.Tensor) -> np.ndarray:
        from resemblyzer import preprocess_wav

        return self.encoder.embed_utterance(preprocess_wav(wav.reshape(-1).numpy(), source_sr=16000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--tokenizer", default="anygpt-assets:tokenizers/speech")
    parser.add_argument("--soundstorm", default="anygpt-assets:tokenizers/soundstorm")
    parser.add_argument("--phones", nargs="*", default=list(TINY_PHONES),
                        help="the phone classes level 1 was distilled to (default: the demo's); none: no probe head")
    parser.add_argument("--train-split", default="train-clean-100")
    parser.add_argument("--eval-split", default="dev-clean")
    parser.add_argument("--probe-files", type=int, default=300)
    parser.add_argument("--eval-files", type=int, default=60)
    parser.add_argument("--clone-pairs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    modality = load_modality(args.tokenizer, SpeechTokenizerCodec)
    speech = modality.codec
    speech.attach_soundstorm(SoundStorm.from_pretrained(args.soundstorm))
    phones = list(args.phones)
    frame_seconds = speech.config.hop_length / speech.sample_rate
    results: dict[str, object] = {"tokenizer": str(args.tokenizer), "frame_rate": speech.frame_rate,
                                  "codebook_size": speech.codebook_size}

    def labelled(split: str, limit: int) -> list[tuple[Path, torch.Tensor, torch.Tensor, torch.Tensor]]:
        files = find_audio(args.root, split)
        files = random.Random(args.seed).sample(files, min(limit, len(files)))
        alignments = load_alignments(files)
        out = []
        for f in files:
            wav = modality.read(f)
            codes = speech.encode_all_levels([wav])[0]
            labels = frame_phones(alignments.get(f.stem, []), codes.shape[1], frame_seconds, phones)
            out.append((f, wav, codes, labels))
        return out

    train = labelled(args.train_split, args.probe_files)
    held = labelled(args.eval_split, args.eval_files)

    # -- level-1 content probe ----------------------------------------------------------------------------------------
    table: dict[int, Counter] = defaultdict(Counter)
    for _, _, codes, labels in train:
        for c, p in zip(codes[0].tolist(), labels.tolist(), strict=True):
            table[c][p] += 1
    prior = Counter(p for *_, labels in train for p in labels.tolist()).most_common(1)[0][0]
    mapping = {c: counts.most_common(1)[0][0] for c, counts in table.items()}
    correct = base = head = total = 0
    for _, _, codes, labels in held:
        guess = torch.tensor([mapping.get(c, prior) for c in codes[0].tolist()])
        correct += int((guess == labels).sum())
        base += int((labels == prior).sum())
        if len(phones) == speech.config.semantic_dimension:  # level 1 was distilled to these phones
            with torch.no_grad():
                q = speech.model.quantizer.decode(codes[:1, None])  # level-1 quantized [1, D, F]
                logits = speech.model.transform(q.transpose(1, 2))[0]
            head += int((logits.argmax(-1) == labels).sum())
        total += len(labels)
    results["level1_phone_probe"] = {"majority_probe_accuracy": correct / total, "distillation_head_accuracy":
                                     head / total if head else None, "majority_phone_baseline": base / total,
                                     "codes_used": len(table), "held_out_frames": total}

    # -- reconstruction ---------------------------------------------------------------------------------------------
    spk = SpeakerEncoder()
    mel_d, sims = [], []
    for _, wav, codes, _ in held:
        recon = speech.decode([codes])[0]
        mel_d.append(log_mel_distance(recon, wav, speech.sample_rate))
        sims.append(float(np.dot(spk(recon), spk(wav))))
    silent = [log_mel_distance(torch.zeros_like(w), w, speech.sample_rate) for _, w, _, _ in held[:10]]
    results["reconstruction"] = {"log_mel_l1": float(np.mean(mel_d)), "log_mel_l1_of_silence": float(np.mean(silent)),
                                 "speaker_similarity_to_original": float(np.mean(sims))}

    # -- voice cloning -------------------------------------------------------------------------------------------------
    by_speaker: dict[str, list] = defaultdict(list)
    for item in train:
        by_speaker[speaker_of(item[0])].append(item)
    centroid = {s: np.mean([spk(w) for _, w, _, _ in items[:5]], axis=0) for s, items in by_speaker.items()}
    centroid = {s: c / np.linalg.norm(c) for s, c in centroid.items()}
    rng = random.Random(args.seed)
    to_prompt, to_others, free_to_prompt, free_to_others, gt_to_own, gt_to_others = [], [], [], [], [], []
    for _ in range(args.clone_pairs):
        f, wav, codes, _ = rng.choice(held)
        target = rng.choice([s for s in by_speaker if s != speaker_of(f)])
        prompt_wav = rng.choice(by_speaker[target])[1]
        cloned = speech.decode([codes[0]], voice=prompt_wav)[0]
        free = speech.decode([codes[0]])[0]
        e, e_free, e_gt = spk(cloned), spk(free), spk(wav)
        others = [s for s in centroid if s != target]
        to_prompt.append(float(e @ centroid[target]))
        to_others.append(float(np.mean([e @ centroid[s] for s in others])))
        free_to_prompt.append(float(e_free @ centroid[target]))
        free_to_others.append(float(np.mean([e_free @ centroid[s] for s in others])))
        own = speaker_of(f)
        gt_to_own.append(float(e_gt @ centroid[own]))
        gt_to_others.append(float(np.mean([e_gt @ centroid[s] for s in centroid if s != own])))
    results["voice_cloning"] = {
        "pairs": args.clone_pairs, "soundstorm_steps": speech.soundstorm_steps,
        "prompt_seconds": speech.prompt_seconds,
        "cloned_to_prompt_speaker": float(np.mean(to_prompt)), "cloned_to_other_speakers": float(np.mean(to_others)),
        "cloned_closer_to_prompt_speaker_fraction": float(np.mean(np.array(to_prompt) > np.array(to_others))),
        "unprompted_to_that_speaker": float(np.mean(free_to_prompt)),
        "unprompted_to_other_speakers": float(np.mean(free_to_others)),
        "real_speech_to_own_speaker": float(np.mean(gt_to_own)),
        "real_speech_to_other_speakers": float(np.mean(gt_to_others)),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
