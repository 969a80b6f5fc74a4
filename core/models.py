"""Every table model, imported in one place so migrations and tests see the whole schema."""

from __future__ import annotations

import importlib

MODEL_MODULES = ("directory.models", "accounts.models", "core.mail", "booking.models")


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
