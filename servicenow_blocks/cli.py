"""``prefect-servicenow``: run the emulator, the webhook receiver and the demo; register the blocks."""

from __future__ import annotations

import subprocess
import sys

import typer

app = typer.Typer(help="prefect-servicenow: ServiceNow tickets fire Prefect flows.", no_args_is_help=True)
blocks_app = typer.Typer(help="Prefect blocks of this collection.", no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="Run the local ServiceNow emulator (options: python -m servicenow_emulator --help).",
)
def emulator(ctx: typer.Context) -> None:
    from servicenow_emulator.cli import main

    main(list(ctx.args))


@app.command(help="Run the webhook receiver that turns Business Rule calls into flow runs.")
def webhook(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8787, help="Port to listen on."),
    credentials_block: str = typer.Option("servicenow", help="ServiceNowCredentials block name."),
    secret_block: str = typer.Option("servicenow-webhook-secret", help="Secret block with the HMAC secret."),
    deployment: str = typer.Option("run-change-request/run-change-request", help="Deployment to run per change."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    import asyncio

    import uvicorn

    from .webhook import create_app, load_config

    config = asyncio.run(load_config(credentials_block, secret_block, deployment))
    typer.echo(f"Webhook receiver: http://{host}:{port}{config.path} (deployment {deployment})")
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, access_log=False)


@blocks_app.command("register", help="Register ServiceNowCredentials with the Prefect API.")
def register() -> None:
    raise typer.Exit(subprocess.call([sys.executable, "-m", "prefect", "block", "register", "-m", "servicenow_blocks"]))


if __name__ == "__main__":
    app()
