"""The FastAPI application: pages, the JSON API and the project's files.

``create_app(root, token=None)`` serves the project at ``root``. Each request opens its own ``Project``
(SQLite connections stay in their thread). Pages are Jinja2 templates with autoescape on; their
JavaScript comes from ``static/`` in the package.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from fastapi import Body, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from tomoforge.engine import Project
from tomoforge.engine.project import STATES
from tomoforge.errors import UserError
from tomoforge.web import ctf, data, viewer, volumes
from tomoforge.web.actions import CONTROLS, START_MODES, FormError, Launcher, control, create_run, launch_in_process
from tomoforge.web.security import OutsideProjectError, guard, project_file

HERE = Path(__file__).resolve().parent
OPENED = cast(Project, None)  # the default of an endpoint's ``p``: ``uses_project`` passes the open project
T = TypeVar("T")
EXCLUDERS = {"sets": ("exclude-views", "tilt_series"), "ctf": ("exclude-ctfs", "ctf")}  # protocol, its input
VIEWERS = {"view": "viewer.html", "tomogram": "tomogram.html", "ctf": "ctf.html", "map": "map.html"}


def viewer_of(kind: str) -> tuple[Callable[..., dict[str, Any]], Callable[..., bytes] | None]:
    """The viewer functions of ``kind``: what an item shows, and the image of one of its views (if any)."""
    kinds: dict[str, tuple[Callable[..., dict[str, Any]], Callable[..., bytes] | None]] = {
        "sets": (viewer.series_views, viewer.view_image),
        "ctf": (ctf.ctf_entries, ctf.spectrum_image),
        "tomograms": (volumes.tomogram_info, None),
        "maps": (volumes.map_info, None),
    }
    if kind not in kinds:
        raise viewer.ViewerError(f"{kind!r}: expected {', '.join(kinds)}")
    return kinds[kind]


def web_image(image: bytes, fmt: str) -> Response:
    return Response(image, media_type=viewer.FORMATS[fmt], headers={"Cache-Control": "private, max-age=60"})


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def create_app(root: Path | str, token: str | None = None, launch: Launcher = launch_in_process) -> FastAPI:
    """The web interface of the project at ``root``; with ``token``, every request must carry it."""
    root = Path(root).resolve()
    Project.open(root).close()  # refuse a folder that is not a project now, not at the first request
    app = FastAPI(title="tomoforge", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(guard(token))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True))

    def uses_project(fn: Callable[..., T]) -> Callable[..., T]:
        """Open the project for the call, in the thread that runs it (a SQLite connection stays in its thread;
        a FastAPI dependency may be closed in another), and hide the ``p`` argument from FastAPI."""
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> T:
            opened = Project.open(root)
            try:
                return fn(*args, p=opened, **kwargs)
            finally:
                opened.close()

        call.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[v for v in signature.parameters.values() if v.name != "p"]
        )
        return call

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        if isinstance(exc, FormError):
            return JSONResponse({"message": str(exc), "fields": exc.fields}, 422)
        status = 403 if isinstance(exc, OutsideProjectError) else 404 if "no run" in str(exc) else 409
        return JSONResponse({"message": str(exc)}, status)

    @app.exception_handler(FileNotFoundError)
    async def missing(request: Request, exc: FileNotFoundError) -> JSONResponse:
        return JSONResponse({"message": str(exc)}, 404)

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"project_root": str(root), **context})

    # --- pages ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def project_page(request: Request) -> HTMLResponse:
        return page(request, "project.html", states=STATES)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    @uses_project
    def run_page(request: Request, run_id: int, p: Project = OPENED) -> HTMLResponse:
        row = p.run(run_id)
        return page(request, "run.html", run_id=run_id, protocol=row["protocol"], label=row["label"])

    @app.get("/new", response_class=HTMLResponse)
    def new_page(request: Request, protocol: str = "") -> HTMLResponse:
        return page(request, "new.html", protocol=protocol, protocols=data.protocol_list())

    # --- JSON API -------------------------------------------------------------------------
    @app.get("/api/project")
    @uses_project
    def api_project(p: Project = OPENED) -> dict[str, Any]:
        return data.project_summary(p)

    @app.get("/api/runs/{run_id}")
    @uses_project
    def api_run(run_id: int, p: Project = OPENED) -> dict[str, Any]:
        return data.run_detail(p, run_id)

    @app.get("/api/runs/{run_id}/log")
    @uses_project
    def api_log(run_id: int, lines: int = 200, p: Project = OPENED) -> dict[str, str]:
        return {"log": data.log_tail(p.run_dir(run_id) / "run.log", max(1, min(lines, 10_000)))}

    @app.get("/api/protocols")
    def api_protocols() -> list[dict[str, str]]:
        return data.protocol_list()

    @app.get("/api/protocols/{name}")
    @uses_project
    def api_protocol(name: str, p: Project = OPENED) -> dict[str, Any]:
        return data.protocol_form(p, name)

    @app.post("/api/runs", status_code=201)
    @uses_project
    def api_new_run(form: dict[str, Any] = Body(...), p: Project = OPENED) -> dict[str, Any]:
        run_id = create_run(p, form, launch)
        return {"run": run_id, "state": p.run(run_id)["state"]}

    @app.post("/api/runs/{run_id}/{action}")
    @uses_project
    def api_action(
        run_id: int, action: str, body: dict[str, Any] | None = Body(None), p: Project = OPENED
    ) -> dict[str, Any]:
        p.run(run_id)
        return control(p, run_id, action, body or {}, launch)

    # --- viewers: the tilt-series viewer (/runs/R/view/OUTPUT), the tomogram viewer (/runs/R/tomogram/OUTPUT)
    @app.get("/runs/{run_id}/{kind}/{output}", response_class=HTMLResponse)
    @uses_project
    def viewer_page(request: Request, run_id: int, kind: str, output: str, p: Project = OPENED) -> HTMLResponse:
        if kind not in VIEWERS:
            raise viewer.ViewerError(f"no viewer {kind!r}: expected {' or '.join(VIEWERS)}")
        keys = p.output_set(run_id, output).keys()
        return page(request, VIEWERS[kind], run_id=run_id, output=output, first=keys[0] if keys else "")

    @app.get("/api/runs/{run_id}/{kind}/{output}/{key}")
    @uses_project
    def api_viewed_item(run_id: int, kind: str, output: str, key: str, p: Project = OPENED) -> dict[str, Any]:
        """What a viewer shows of an item: ``sets`` a tilt series' views, ``ctf`` its CTF entries, ``tomograms``
        a tomogram's size and coordinate sets, ``maps`` a map's size, volumes and FSC."""
        return viewer_of(kind)[0](p, run_id, output, key)

    @app.get("/api/runs/{run_id}/{kind}/{output}/{key}/{order}.{fmt}")
    @uses_project
    def api_viewed_image(
        run_id: int, kind: str, output: str, key: str, order: int, fmt: str, bin: int = 4, p: Project = OPENED
    ) -> Response:
        """The image of a view (``sets``, binned) or of a tilt's spectrum (``ctf``), by acquisition order."""
        image = viewer_of(kind)[1]
        if image is None:
            raise viewer.ViewerError(f"{kind}: no image by acquisition order (tomograms: AXIS/INDEX.png)")
        return web_image(image(p, run_id, output, key, order, fmt, bin), fmt)

    @app.post("/api/runs/{run_id}/{kind}/{output}/exclude", status_code=201)
    @uses_project
    def api_exclude(run_id: int, kind: str, output: str, body: dict[str, Any] = Body(...), p: Project = OPENED) -> Any:
        """Save a viewer's exclusions: ``sets`` (tilt series) as exclude-views, ``ctf`` as exclude-ctfs runs."""
        if kind not in EXCLUDERS:
            raise viewer.ViewerError(f"{kind!r}: expected {' or '.join(EXCLUDERS)}")
        excluded = body.get("excluded")
        if not isinstance(excluded, dict) or not all(isinstance(v, list) for v in excluded.values()):
            raise viewer.ViewerError("excluded: expected {name: [acquisition orders]}")
        protocol, input_name = EXCLUDERS[kind]
        params = {"restack": bool(body.get("restack", False))} if kind == "sets" else {}
        return {"runs": viewer.save_exclusions(p, run_id, output, excluded, launch, protocol, input_name, params)}

    @app.get("/api/runs/{run_id}/tomograms/{output}/{key}/{axis}/{index}.{fmt}")
    @uses_project
    def api_slice(
        run_id: int,
        output: str,
        key: str,
        axis: str,
        index: int,
        fmt: str,
        bin: int = 1,
        low: float = 0.5,
        high: float = 99.5,
        which: str = "map",
        p: Project = OPENED,
    ) -> Response:
        """A slice of a tomogram, or of a map (``which``: map, half1, half2, mask)."""
        return web_image(volumes.slice_image(p, run_id, output, key, axis, index, bin, fmt, (low, high), which), fmt)

    @app.get("/api/runs/{run_id}/tomograms/{output}/{key}/{axis}/{index}/coordinates")
    @uses_project
    def api_slice_coordinates(
        run_id: int,
        output: str,
        key: str,
        axis: str,
        index: int,
        set: str,
        half_width: float = 5.0,
        p: Project = OPENED,
    ) -> list[dict[str, Any]]:
        return volumes.coordinates_near(p, run_id, output, key, set, axis, index, half_width)

    @app.post("/api/runs/{run_id}/tomograms/{output}/picks", status_code=201)
    @uses_project
    def api_picks(run_id: int, output: str, body: dict[str, Any] = Body(...), p: Project = OPENED) -> dict[str, Any]:
        """Points clicked on the slices as a new coordinate set (an import-coordinates run)."""
        points = body.get("points")
        if not isinstance(points, dict):
            raise viewer.ViewerError("points: expected {tomogram name: [[x, y, z], ...]}")
        return {"run": volumes.save_picks(p, run_id, output, points, launch)}

    @app.get("/files/{relative:path}")
    def project_files(relative: str) -> Response:
        """A file of the project; anything but an image is sent as plain text, and in a sandbox."""
        path = project_file(root, relative)
        media = IMAGE_TYPES.get(path.suffix.lower(), "text/plain; charset=utf-8")
        return FileResponse(path, media_type=media, headers={"Content-Security-Policy": "sandbox; default-src 'none'"})

    app.state.actions = (*START_MODES, *CONTROLS, "label")
    return app
