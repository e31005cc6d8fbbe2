"""Transformer linker (Trackastra-style, with gap edges for blinking single molecules).

``net`` (LinkerNet), ``loss``, ``targets`` (simulated localization tables and training
windows), ``infer`` (TransformerLinker, the registry loader), ``lightning``, ``export``.
Import the submodules directly; this package does not import torch-heavy modules eagerly.
"""
