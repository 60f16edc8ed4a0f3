"""anyspec: universal speculative decoding across vocabularies, exactly lossless."""

import os

# torch and llama.cpp each bring an OpenMP thread pool whose idle threads spin for a while
# (libgomp's default is 300k iterations) before they sleep. Speculative decoding alternates
# between two models every few milliseconds, and on a busy machine spinning threads steal the
# cores the other model needs. A short spin keeps full speed on a quiet machine and degrades
# gently on a busy one. Measured here, Gemma 3 270M on llama.cpp, 2 cores:
#   quiet: default 33.8 tok/s, spin 1000 33.3, passive 17.4;
#   one busy process beside it: default 6.5, spin 1000 14.9, passive 17.3.
# Set before torch or llama.cpp is imported; a value the user set wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

__version__ = "0.1.0"
