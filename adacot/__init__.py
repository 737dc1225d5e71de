"""adacot: model-adaptive long chain-of-thought data and fine-tuning."""

__version__ = "0.1.0"
