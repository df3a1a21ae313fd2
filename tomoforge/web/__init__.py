"""The web interface: ``tomoforge serve`` shows the open project in a browser.

It reads the project through the engine and changes it only through the engine's run operations (the
ones the CLI calls): every action creates or controls a run, never an existing output. Only files of the
open project are served (see ``web.security``). FastAPI is imported here and below only, so the light
CLI commands never load it.
"""
