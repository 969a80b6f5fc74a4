"""Litestar CLI commands: `litestar db upgrade`, `litestar seed demo|bench`, and each domain's own."""

from __future__ import annotations

import click
from click import Group
from litestar import Litestar
from litestar.plugins import CLIPluginProtocol

from core.settings import Settings


def app_settings(app: Litestar) -> Settings:
    settings: Settings = app.state.settings
    return settings


class CLIPlugin(CLIPluginProtocol):
    def on_cli_init(self, cli: Group) -> None:
        from accounts.cli import add_admin_commands
        from booking.seed import seed_demo_webinars
        from core.db import Database
        from directory.seed import seed_bench, seed_demo_directory

        @cli.group(name="db", help="Database schema.")
        def db_group() -> None: ...

        @db_group.command(name="upgrade", help="Apply every migration not yet applied.")
        def db_upgrade(app: Litestar) -> None:
            from core.migrate import upgrade

            settings = app_settings(app)
            upgrade(settings.database_url)
            click.echo(f"Database at {_redact(settings.database_url)} is up to date.")

        add_admin_commands(cli)

        @cli.group(name="seed", help="Fill the database with demo or benchmark data.")
        def seed_group() -> None: ...

        @seed_group.command(name="demo", help="A believable demo network: providers and webinars.")
        def demo(app: Litestar) -> None:
            db = Database(app_settings(app).database_url)
            try:
                click.echo(seed_demo_directory(db))
                click.echo(seed_demo_webinars(db))
            finally:
                db.dispose()

        @seed_group.command(name="bench", help="A large synthetic directory for benchmarks.")
        @click.option("--providers", type=click.IntRange(1, 2_000_000), default=100_000, show_default=True)
        def bench(app: Litestar, providers: int) -> None:
            click.echo(seed_bench(app_settings(app).database_url, providers))


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
