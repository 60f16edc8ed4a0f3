"""anyspec: universal speculative decoding across vocabularies, exactly lossless.

Importing anyspec changes no environment variable and patches no other library. The
`anyspec` command sets its process-wide defaults where it starts (`anyspec.cli.main`).
"""

__version__ = "0.1.0"
