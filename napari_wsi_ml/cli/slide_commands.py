"""CLI sub-commands of the slide layer."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
