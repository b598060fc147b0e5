"""Judge models for the benchmarks: small ones trained on the demo corpus and shipped with anygpt (so every benchmark
produces a number offline), and adapters for the real ones (open_clip, laion_clap, Whisper) loaded from local paths."""

from benchmarks.judges.registry import JUDGE_KINDS, ClipJudge, load_judge, shipped_judge_dir

__all__ = ["JUDGE_KINDS", "ClipJudge", "load_judge", "shipped_judge_dir"]
