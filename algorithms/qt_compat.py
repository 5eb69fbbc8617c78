"""Field types for QgsField on QGIS 3.22 to QGIS 4 (Qt 5 and Qt 6).

PyQt6 has no ``QVariant.Type`` (``QVariant.Int``, ``QVariant.Double``): QGIS 3.38 and later take
``QMetaType.Type`` for fields, older QGIS (always Qt 5) ``QVariant.Type``. Use these names instead of either.
"""

from qgis.core import Qgis

if Qgis.QGIS_VERSION_INT >= 33800:
    from qgis.PyQt.QtCore import QMetaType

    INT, DOUBLE, STRING = QMetaType.Type.Int, QMetaType.Type.Double, QMetaType.Type.QString
else:  # QGIS 3.22-3.36: Qt 5 only
    from qgis.PyQt.QtCore import QVariant

    INT, DOUBLE, STRING = QVariant.Int, QVariant.Double, QVariant.String  # qt6-scan: allow (Qt 5 branch)
