"""The embedded demo: a small pretrained GPT-2-style model that ships with the package.

``DEMO_MODEL_DIR`` holds the tokenizer and safetensors weights made by
``python -m tools.build_demo`` (see ``BUILD.json`` there for how). The texts it was
pretrained and is fine-tuned on come from :mod:`engine.demo.corpus`.
Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

DEMO_NAME = "freeze-tui demo"
DEMO_MODEL_DIR: Path = Path(__file__).resolve().parent / "model"

__all__ = ["DEMO_NAME", "DEMO_MODEL_DIR"]
