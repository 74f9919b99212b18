"""Readers and matplotlib charts behind tools/plots.py."""
