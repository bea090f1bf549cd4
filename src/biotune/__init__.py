"""biotune: stable fine-tuning of transformer encoders on biomedical NLP (BLURB)."""

__version__ = "0.1.0"
