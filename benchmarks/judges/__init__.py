"""Judge models for the benchmarks.

Small judges trained on the demo corpus's train split ship with anygpt (``anygpt/assets/judges/{clip,clap,asr}``) so
every benchmark produces a number offline; real judges (open_clip, laion_clap, Whisper) load from local paths through
the same call, and every judge says which model it is (``description``) for the results and the report::

    from benchmarks.judges import load_judge
    clip = load_judge("clip")                       # tiny open_clip: .model, .preprocess, .tokenizer (for CLIPScore)
    clap = load_judge("clap")                       # .embed_audio(wavs, sample_rate), .embed_text(texts)  (CLAPScore)
    asr = load_judge("asr", "/ckpt/whisper-medium") # .transcribe(wavs, sample_rate) -> list[str]

Retrain a shipped judge: ``anygpt fit --config experiments/judges/<kind>.yaml``; measure one:
``python -m benchmarks.judges.evaluate <kind> <data>``.
"""

from benchmarks.judges.registry import JUDGE_KINDS, ClipJudge, load_judge, shipped_judge_dir

__all__ = ["JUDGE_KINDS", "ClipJudge", "load_judge", "shipped_judge_dir"]
