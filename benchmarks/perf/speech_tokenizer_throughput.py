"""Speech tokenizer throughput on this machine, in audio seconds per wall-clock second.

The reference measured in the same run is the `speechtokenizer` package with the same random weights (paper
configuration): ``ratio`` = our rate / its rate. The tiny demo tokenizer and the SoundStorm decode path (level 1 ->
8 levels -> audio) are timed too when their shipped checkpoints exist.

    OMP_NUM_THREADS=2 python benchmarks/perf/speech_tokenizer_throughput.py --seconds 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch

from anygpt.assets import asset_path
from anygpt.modalities.speech import SoundStorm, TinySpeechCodec
from anygpt.modalities.speech.tokenizer import SpeechTokenizerConfig, SpeechTokenizerModel
from benchmarks.perf.generation import now


def rate(fn: Callable[[], object], audio_seconds: float, repeats: int,
         device: torch.device = torch.device("cpu")) -> float:
    """Audio seconds per second of ``fn`` (on ``audio_seconds`` of audio) over ``repeats`` calls after a warm-up."""
    fn()  # warm-up
    start = now(device)
    for _ in range(repeats):
        fn()
    return audio_seconds * repeats / (now(device) - start)


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    wav = torch.randn(1, 1, int(args.seconds * 16000)) * 0.1
    report: dict[str, object] = {"audio_seconds": args.seconds, "repeats": args.repeats,
                                 "threads": torch.get_num_threads()}

    if not args.skip_paper:
        from speechtokenizer import SpeechTokenizer

        config = SpeechTokenizerConfig()
        reference = SpeechTokenizer(config.to_dict()).eval()
        ours = SpeechTokenizerModel(config).eval()
        ours.load_state_dict(reference.state_dict())
        codes = ours.encode(wav)
        paper = {
            "encode_ours": rate(lambda: ours.encode(wav), args.seconds, args.repeats),
            "encode_reference": rate(lambda: reference.encode(wav), args.seconds, args.repeats),
            "decode_ours": rate(lambda: ours.decode(codes), args.seconds, args.repeats),
            "decode_reference": rate(lambda: reference.decode(codes), args.seconds, args.repeats),
        }
        paper["encode_ratio"] = paper["encode_ours"] / paper["encode_reference"]
        paper["decode_ratio"] = paper["decode_ours"] / paper["decode_reference"]
        report["paper_speechtokenizer"] = paper

    assets = asset_path("anygpt-assets:tokenizers")
    if (assets / "speech" / "model.safetensors").exists():
        tiny = TinySpeechCodec.from_pretrained(assets / "speech")
        item = wav[0]
        full = tiny.encode_all_levels([item])[0]
        section = {"encode": rate(lambda: tiny.encode([item]), args.seconds, args.repeats),
                   "decode_8_levels": rate(lambda: tiny.decode([full]), args.seconds, args.repeats)}
        if (assets / "soundstorm" / "model.safetensors").exists():
            tiny.attach_soundstorm(SoundStorm.from_pretrained(assets / "soundstorm"))
            section["decode_level1_via_soundstorm"] = rate(lambda: tiny.decode([full[0]]), args.seconds,
                                                           args.repeats)
        report["tiny"] = section
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
