"""The options several commands of ``ci/cli.py`` share, defined once."""

from __future__ import annotations

import click


def backend(function):
    return click.option("--backend", default=None,
                        help="local | sagemaker (default: $MODELOPS_BACKEND or local).")(function)


def artifacts(function):
    return click.option("--artifacts", "artifacts_dir", default=None, type=click.Path(file_okay=False),
                        help="Artifacts folder (default: artifacts/ at the project root).")(function)


def unseen(function):
    return click.option("--unseen", type=click.Choice(["error", "zeros"]), default="error", show_default=True,
                        help="With --raw: a category value never seen in training is an error, or sets no one-hot "
                             "column.")(function)


def environment(default: str | None, help: str):
    from modelops.config import ENVIRONMENT_NAMES

    return click.option("--env", "env_name", type=click.Choice(ENVIRONMENT_NAMES), default=default,
                        show_default=default is not None, help=help)


def stage_names() -> list[str]:
    from ci.stages import STAGES

    return list(STAGES)
