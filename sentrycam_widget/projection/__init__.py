"""Projection methods: SentryCam (default) and the baselines, behind one protocol."""

from .base import (
    Background,
    Frame,
    Projector,
    RunHistory,
    available_methods,
    make_projector,
    register_method,
)

__all__ = [
    "Background",
    "Frame",
    "Projector",
    "RunHistory",
    "available_methods",
    "make_projector",
    "register_method",
]
