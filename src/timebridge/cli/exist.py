"""`timebridge exist …`: log in to Exist and read attributes and values."""

from __future__ import annotations

import typer

exist_app = typer.Typer(
    help="Exist.io: log in, list attributes, read values.", no_args_is_help=True
)
