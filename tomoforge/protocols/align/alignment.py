from tomoforge.protocols.align.coarse import CoarseAlignment  # noqa: F401  (shim: the lead deletes it at merge)
from tomoforge.protocols.align.fiducial import (
    FiducialAlignment,  # noqa: F401  (shim: the lead deletes it at merge)
    FiducialModel,  # noqa: F401  (shim: the lead deletes it at merge)
)
from tomoforge.protocols.align.transfer import (
    AssignAlignment,  # noqa: F401  (shim: the lead deletes it at merge)
    ExportAlignment,  # noqa: F401  (shim: the lead deletes it at merge)
    ImportAlignment,  # noqa: F401  (shim: the lead deletes it at merge)
)
