"""Projection methods: SentryCam (default) and the baselines, behind one protocol."""

from .base import (
    Projector,
    RunHistory,
    available_methods,
    make_projector,
    register_method,
)

__all__ = [
    "Projector",
    "RunHistory",
    "available_methods",
    "make_projector",
    "register_method",
]
