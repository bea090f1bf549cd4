"""biotune: stable fine-tuning of transformer encoders on biomedical NLP (BLURB)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from biotune.api import load


def __getattr__(name: str) -> Any:
    # `biotune.load` pulls in torch and transformers: import it on first use so `import biotune` stays cheap.
    if name == "load":
        from biotune.api import load

        return load
    raise AttributeError(f"module 'biotune' has no attribute {name!r}")


__all__ = ["__version__", "load"]
