"""dpaudit: train, attack and audit LoRA adapters of language models for privacy."""

__version__ = "0.1.0"
