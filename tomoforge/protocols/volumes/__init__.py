"""Maps as references: import (``imports``), resize (``resize``) and masks (``mask``)."""
