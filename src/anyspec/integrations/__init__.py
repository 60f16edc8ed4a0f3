"""Adapters that run anyspec's proposers inside other engines (vllm.py: vLLM's custom_class
proposer hook). Nothing in anyspec's core imports this package."""
