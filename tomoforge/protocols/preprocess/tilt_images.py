from tomoforge.protocols.preprocess.binning import PreprocessTiltSeries  # noqa: F401  (shim: the lead deletes it at merge)
from tomoforge.protocols.preprocess.dose import DoseFilter  # noqa: F401  (shim: the lead deletes it at merge)
from tomoforge.protocols.preprocess.exclude import ExcludeViews  # noqa: F401  (shim: the lead deletes it at merge)
from tomoforge.protocols.preprocess.xray import XrayEraser  # noqa: F401  (shim: the lead deletes it at merge)
