"""The click plumbing of the `oracle` and `powerhive` commands: every error is one line.

Click prints a usage error (a malformed option, an unknown command, a missing argument) as
the usage, a hint and the error on three lines with exit status 2, and a top-level option's
error happens before any `invoke` could catch it. `OneLineGroup` turns every usage error,
at any level, and every error of `errors` into one line on stderr and exit status 1.
"""

from __future__ import annotations

import click

from oracle.errors import OracleError


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def usage_error(exc: click.UsageError) -> click.ClickException:
    """`exc` as one line that names the command's --help."""
    where = f" (see {exc.ctx.command_path} --help)" if exc.ctx else ""
    return click.ClickException(one_line(exc.format_message()) + where)


class OneLineGroup(click.Group):
    """A command group whose usage errors and `errors` are one line, exit status 1."""

    errors: tuple[type[Exception], ...] = (OracleError,)

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:  # the group's own options and arguments: parsed before `invoke`
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise usage_error(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except self.errors as exc:
            raise click.ClickException(one_line(exc)) from None
        except click.UsageError as exc:  # a subcommand's (any depth)
            raise usage_error(exc) from None
