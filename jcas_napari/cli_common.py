"""What every ``jcas`` command shares: one-line user errors (exit 2) and notes."""

from __future__ import annotations

from typing import NoReturn

import typer


def fail(message: str) -> NoReturn:
    """Print a user error in one line and exit 2 (no traceback)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def errors():
    """The user errors that get one line and exit code 2 instead of a traceback."""
    from jcas_napari.core.checkpoint import CheckpointError
    from jcas_napari.data.io import DatasetError

    return (DatasetError, CheckpointError, ValueError, OSError)


def note(text: str) -> None:
    typer.echo(f"note: {text}", err=True)
