"""CLI fixtures: the real HIV mdoc beside a generated stack."""

from tests.protocols.conftest import hiv_dir  # noqa: F401
