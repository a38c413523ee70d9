"""The probes layer: texts -> LLM activations -> safety-probe, expert and DV scores.

Importing this package does not import torch; the heavy modules do, when they are imported.
"""
