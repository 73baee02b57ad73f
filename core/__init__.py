"""Shared leaf types of Damselfly: digests, names, errors, piece layout and the supernode wire format.

Nothing in here imports any other Damselfly package, so every package may depend on it.
"""
