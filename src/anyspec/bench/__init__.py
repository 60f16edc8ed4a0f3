"""`anyspec bench`: Spec-Bench runs of the engine's methods and of peers (transformers' own
assisted generation), with speedup, MAT, acceptance, time split, bound and a greedy
losslessness check.

    data.py     questions and conversation prompts      peers.py   transformers peers
    runner.py   the interleaved run, rows, resume       metrics.py pure arithmetic on rows
    report.py   report.md, plots, comparing two runs    cli.py     the subcommand
"""
