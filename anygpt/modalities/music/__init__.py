"""Music tokenizers: MusicGen's Encodec 32 kHz (the paper's) and a tiny SEANet codec trained on the demo corpus."""

from anygpt.modalities.music.codec import SEANetCodec
from anygpt.modalities.music.encodec32k import EncodecMusicTokenizer
from anygpt.modalities.music.tiny import TinyMusicCodec

__all__ = ["EncodecMusicTokenizer", "SEANetCodec", "TinyMusicCodec"]
