"""OreMap's dialogs and GUI actions (Qt only through qgis.PyQt)."""
