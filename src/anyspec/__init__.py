"""anyspec: universal speculative decoding across vocabularies, exactly lossless."""

import os

# torch and llama.cpp each bring an OpenMP thread pool whose idle threads spin for a while
# (libgomp's default is 300k iterations) before they sleep. Too long a spin starves the other
# model, or another process, on a busy machine; too short a spin makes every parallel region
# wake sleeping threads, which slows torch most. Measured here, 2 cores, decode tok/s:
#                                    spin 1000   10000   30000   default 300k
#   Gemma 3, llama.cpp, quiet             32.5    34.7    34.6    33.8
#   Gemma 3, transformers, quiet          16.1    19.2    19.2      -
#   either one beside a busy process  15.9/10.5  9.2/8.2  7.4/6.1  3.9/2.1
# With the transformers target alternating with a llama.cpp draft, a 5-token verification
# pass took 113 ms at spin 1000 and 78-81 ms at 10000 or more. 10000 is the default; set
# GOMP_SPINCOUNT=1000 (or OMP_WAIT_POLICY=PASSIVE) when the cores are shared.
# Set before torch or llama.cpp is imported; a value the user set wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"
