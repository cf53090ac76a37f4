"""The ``jcas`` command line: thin wrappers around the library functions.

The commands live by responsibility in :mod:`jcas_napari.cli_data` (datasets, evaluation,
export) and :mod:`jcas_napari.cli_train` (train, clean, run); this module registers them.
"""

from __future__ import annotations

import typer

from jcas_napari import cli_data, cli_train

app = typer.Typer(
    help="jcas: clean noisy surgical-instrument segmentation masks with JCAS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("make-dataset")(cli_data.make_dataset_cmd)
app.command("check")(cli_data.check_cmd)
app.command("train")(cli_train.train_cmd)
app.command("clean")(cli_train.clean_cmd)
app.command("run")(cli_train.run_cmd)
app.command("evaluate")(cli_data.evaluate_cmd)
app.command("affinity")(cli_data.affinity_cmd)
app.command("export")(cli_data.export_cmd)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
