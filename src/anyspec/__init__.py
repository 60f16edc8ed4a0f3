"""anyspec: universal speculative decoding across vocabularies, exactly lossless."""

__version__ = "0.1.0"
