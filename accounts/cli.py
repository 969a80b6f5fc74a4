"""`litestar admin create EMAIL`: add an admin account; the password is prompted for, never an argument."""

from __future__ import annotations

import click
from click import Group
from litestar import Litestar

from accounts.service import MIN_PASSWORD_LENGTH, AccountError, create_admin, normalise_email
from core.db import Database
from core.settings import Settings


def add_admin_commands(cli: Group) -> None:
    """Called by core.cli's plugin with Litestar's root group (which passes `app` to commands)."""

    @cli.group(name="admin", help="Admin accounts.")
    def admin_group() -> None: ...

    @admin_group.command(name="create", help="Add an admin account; prompts twice for its password.")
    @click.argument("email")
    def create(app: Litestar, email: str) -> None:
        settings: Settings = app.state.settings
        # A password given as an argument would sit in shell history and `ps`: prompt, hidden, twice.
        password: str = click.prompt(
            f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
            hide_input=True,
            confirmation_prompt="Repeat the password",
        )
        db = Database(settings.database_url)
        try:
            create_admin(db, email, password)
        except AccountError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            db.dispose()
        click.echo(f"Admin {normalise_email(email)} created.")
