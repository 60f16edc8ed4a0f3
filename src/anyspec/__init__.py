"""anyspec: universal speculative decoding across vocabularies, exactly lossless."""

import os

# torch and llama.cpp each bring an OpenMP thread pool whose idle threads spin by default.
# Speculative decoding alternates between two models every few milliseconds, so a spinning
# pool steals the cores the other model needs: measured here, sd with a transformers target
# and a llama.cpp draft ran 4-6x faster with passive waiting. Set before either is imported;
# a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
