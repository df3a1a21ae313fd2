"""``tomoforge serve``: the web interface of a project (FastAPI and uvicorn are imported only here, when run)."""

from __future__ import annotations

from pathlib import Path

import typer

from tomoforge.cli.common import CommandError, console, state


def serve_command(
    project: Path | None = typer.Argument(None, help="project folder (default: --project or the current folder)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (another than 127.0.0.1 needs a token)"),
    port: int = typer.Option(8000, min=1, max=65535, help="port to listen on"),
    token: str = typer.Option(
        "", envvar="TOMOFORGE_TOKEN", help="token every request must carry (generated when needed and not given)"
    ),
) -> None:
    """Serve the project to a browser: runs, their graph, logs and plots, new runs and the viewers."""
    from tomoforge.engine import Project
    from tomoforge.web.security import needs_token, new_token

    root = Path(project or state["project"] or Path.cwd())
    Project.open(root).close()
    if token and len(token) < 16:
        raise CommandError(f"--token: {len(token)} characters is too short to guess-proof (at least 16)")
    if needs_token(host) and not token:
        token = new_token()
    import uvicorn

    from tomoforge.web.app import create_app

    app = create_app(root, token or None)
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"serving {root.resolve()} at {link}")
    if host in ("127.0.0.1", "localhost"):
        console.print(f"from another machine: ssh -N -L {port}:127.0.0.1:{port} USER@THIS_HOST, then open the link")
    uvicorn.run(app, host=host, port=port, log_level="warning")
