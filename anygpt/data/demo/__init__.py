"""The bundled demo corpus: procedural images, espeak-ng speech, synthesized music and any-to-any dialogues,
written in the layouts of COCO (Karpathy), LibriSpeech, VCTK, MusicCaps and AnyInstruct."""

from anygpt.data.demo.build import build_demo_corpus, demo, load_manifest

__all__ = ["build_demo_corpus", "demo", "load_manifest"]
