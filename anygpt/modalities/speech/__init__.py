"""Speech: SpeechTokenizer-compatible codec (level 1 = LLM tokens) and SoundStorm voice cloning."""

from anygpt.modalities.speech.codec import SpeechTokenizerCodec
from anygpt.modalities.speech.soundstorm import SoundStorm
from anygpt.modalities.speech.tiny import TinySpeechCodec
from anygpt.modalities.speech.tokenizer import SpeechTokenizerConfig, SpeechTokenizerModel

__all__ = ["SoundStorm", "SpeechTokenizerCodec", "SpeechTokenizerConfig", "SpeechTokenizerModel", "TinySpeechCodec"]
