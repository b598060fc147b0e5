"""Speech: SpeechTokenizer-compatible codec (level 1 = LLM tokens) and SoundStorm voice cloning."""

from anygpt.modalities.speech.audio import AudioFileError, read_audio, write_audio
from anygpt.modalities.speech.modality import SpeechTokenizerModality, TinySpeechModality
from anygpt.modalities.speech.soundstorm import SoundStorm, SoundStormModule
from anygpt.modalities.speech.tokenizer import SpeechTokenizerConfig, SpeechTokenizerModel

__all__ = ["AudioFileError", "SoundStorm", "SoundStormModule", "SpeechTokenizerConfig", "SpeechTokenizerModality",
           "SpeechTokenizerModel", "TinySpeechModality", "read_audio", "write_audio"]
