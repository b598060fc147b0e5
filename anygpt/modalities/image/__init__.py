"""Image tokenizers: SEED-2 (the paper's, codes -> unCLIP embeddings) and a tiny VQ autoencoder for the demo."""

from anygpt.modalities.image.seed import SEEDImageTokenizer
from anygpt.modalities.image.tiny import TinyImageTokenizer

__all__ = ["SEEDImageTokenizer", "TinyImageTokenizer"]
