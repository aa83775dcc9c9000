"""The web server: `digest serve` (waitress; deploy/digest-web.service runs it)."""

from __future__ import annotations

import click

from digest.cli.base import get_config, main


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int) -> None:
    """Serve the sign-up, preferences, unsubscribe and feedback pages (waitress)."""
    import waitress

    from digest.web import create_app

    config = get_config(ctx)
    app = create_app(config)
    click.echo(
        f"serving on http://{host}:{port}; links in emails point to {config.base_url} "
        f"(set DIGEST_BASE_URL if that is not where people reach this server)"
    )
    waitress.serve(app, host=host, port=port, threads=threads, ident="digest")
