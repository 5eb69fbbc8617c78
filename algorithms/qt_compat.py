"""Field types for QgsField on QGIS 3.22 to QGIS 4 (Qt 5 and Qt 6).

PyQt6 has no ``QVariant.Type`` (``QVariant.Int``, ``QVariant.Double``): QGIS 3.38 and later take
``QMetaType.Type`` for fields, older QGIS on Qt 5 ``QVariant.Type``, and the Qt 6 builds of older QGIS can only be
given ``QMetaType.Type``. Use these names instead of either.
"""

from qgis.core import Qgis
from qgis.PyQt.QtCore import QVariant

# decided by Qt as well as by QGIS: the Qt 6 builds of QGIS 3.34 and 3.36 have no QVariant.Int either
if Qgis.QGIS_VERSION_INT >= 33800 or not hasattr(QVariant, "Int"):
    from qgis.PyQt.QtCore import QMetaType

    INT, DOUBLE, STRING, BOOL = QMetaType.Type.Int, QMetaType.Type.Double, QMetaType.Type.QString, QMetaType.Type.Bool
else:  # QGIS 3.22-3.36 on Qt 5
    INT, DOUBLE, STRING, BOOL = QVariant.Int, QVariant.Double, QVariant.String, QVariant.Bool  # qt6-scan: allow (Qt 5)
