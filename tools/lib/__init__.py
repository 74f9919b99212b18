"""Helpers shared by tools/compare_llama.py and tools/bench.py."""
