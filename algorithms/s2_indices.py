"""oremap:s2_indices - spectral indices of a Sentinel-2 scene (vegetation, water, bare soil, iron, clay)."""

import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.sentinel2.sentinel2 import INDEX_NAMES, INDICES, indices_map, open_sentinel2, product_folder
from .base import OreMapAlgorithm

#: the style of the indices raster: its first index on a red-yellow-green ramp
INDEX_STYLE = {"kind": "ramp", "band": 1, "ramp": "RdYlGn"}


S2_INPUT_HELP = {
    "INPUT": "A multi-band Sentinel-2 raster at 10 m (L2A surface reflectance preferred) whose bands are named "
             "(B2, B04, 'Band 8A' ...), or give a band map. A product's MTD_MSIL2A.xml (or a GDAL subdataset of it) "
             "reads its .SAFE folder; a zipped product has to be unzipped first. Leave empty when using a folder.",
    "INPUT_FOLDER": "Instead of a raster: a folder of per-band files (*_B02.tif, *_B8A.jp2, B02.tif, or blue.tif, "
                    "nir08.tif ... as COG archives name them) or a .SAFE product (its quality masks are no bands), "
                    "stacked on the 10 m grid (20 m and 60 m bands resampled bilinearly).",
    "BAND_MAP": "The raster band of each S2 band, e.g. 'B2=1, B3=2, B4=3, B8=4, B11=5, B12=6': names unnamed "
                "bands, renames named ones (B8=4 on a band called B4 makes it B8) and completes them (the bands "
                "the map does not mention keep their names).",
    "CLOUD_MASK": "With the L2A scene classification (a folder's *_SCL_20m.jp2, or a band named SCL in the "
                  "raster, as Earth Engine and openEO exports carry): treat pixels it classes as cloud (medium or "
                  "high probability), thin cirrus, cloud shadow, saturated or no data as nodata. The log gives the "
                  "share masked. Turn it off if bright mine surfaces (tailings, salt) were taken for cloud. Other "
                  "cloud bands inside a raster (QA60, MSK_CLDPRB, CLM) are not used: the log says so.",
}


def add_s2_input(alg):
    """The Sentinel-2 input parameters: INPUT (raster) or INPUT_FOLDER, and BAND_MAP (advanced)."""
    alg._add(QgsProcessingParameterRasterLayer("INPUT", alg.tr("Sentinel-2 raster"), optional=True))
    alg._add(QgsProcessingParameterFile("INPUT_FOLDER", alg.tr("Or a folder of per-band files"),
                                        behavior=QgsProcessingParameterFile.Folder, optional=True))
    alg._add(QgsProcessingParameterString("BAND_MAP", alg.tr("Band map (names, renames or completes bands)"),
                                          optional=True),
             advanced=True)
    add_cloud_mask(alg)


def add_cloud_mask(alg):
    """CLOUD_MASK (advanced, on): mask clouds with a folder's scene classification."""
    alg._add(QgsProcessingParameterBoolean("CLOUD_MASK", alg.tr("Mask clouds with the scene classification (SCL)"),
                                           defaultValue=True), advanced=True)


def cloud_mask(alg, parameters, context):
    """Whether CLOUD_MASK asks for the scene classification's cloud mask."""
    return alg.parameterAsBoolean(parameters, "CLOUD_MASK", context)


def _is_product_reference(text):
    """Whether INPUT names a Sentinel-2 product rather than a raster: its MTD_MSIL*.xml, a SENTINEL2_L*
    subdataset, a .zip, or a .SAFE folder."""
    text = text.strip()
    name = os.path.basename(text.rstrip("/\\")).upper()
    return (text.upper().startswith("SENTINEL2_L") or name.endswith(".ZIP") or name.startswith("MTD_MSIL")
            or (name.endswith(".SAFE") and os.path.isdir(text)))


def s2_input_path(alg, parameters, context, with_crs=True):
    """``(path, band_map, crs)`` of the Sentinel-2 input: the raster INPUT or the folder INPUT_FOLDER (one of them).

    ``crs`` is a QgsCoordinateReferenceSystem of the input (to bring vector layers onto it); None when
    ``with_crs`` is False (a folder is then not opened here).
    """
    raw = parameters.get("INPUT")
    via_input = isinstance(raw, str) and _is_product_reference(raw)
    if via_input:
        # a product's MTD_MSIL2A.xml (what QGIS opens), a GDAL subdataset of it, a zipped product: read as the
        # product folder, or refused with the fix, as given in INPUT
        if alg.parameterAsFile(parameters, "INPUT_FOLDER", context):
            raise alg.fail("INPUT_FOLDER", "Both a raster and a folder were given.", "Use one of them.")
        alg._parameter_overrides["raster"] = "INPUT"
        folder = product_folder(raw)
        parameters = {**parameters, "INPUT": None, "INPUT_FOLDER": folder}
    layer = alg.parameterAsRasterLayer(parameters, "INPUT", context) if parameters.get("INPUT") else None
    folder = alg.parameterAsFile(parameters, "INPUT_FOLDER", context)
    if layer is not None and folder:
        raise alg.fail("INPUT_FOLDER", "Both a raster and a folder were given.", "Use one of them.")
    if layer is None and not folder:
        raise alg.fail("INPUT", "No Sentinel-2 input was given.",
                       "Choose a Sentinel-2 raster, or a folder of per-band files (*_B02.tif ...).")
    band_map = alg.parameterAsString(parameters, "BAND_MAP", context) or None
    if layer is not None:
        path, layer = alg.raster_path(parameters, "INPUT", context, require_crs=with_crs)   # indices are per pixel
        return path, band_map, layer.crs() if with_crs else None
    alg._parameter_overrides["raster"] = "INPUT" if via_input else "INPUT_FOLDER"
    if not with_crs:
        return folder, band_map, None
    with open_sentinel2(folder, required=[], mask_clouds=False) as s2:  # only its grid is needed here
        crs = QgsCoordinateReferenceSystem.fromWkt(s2.crs.to_wkt()) if s2.crs is not None else \
            QgsCoordinateReferenceSystem()
    return folder, band_map, crs


class S2Indices(OreMapAlgorithm):
    NAME = "s2_indices"
    DISPLAY_NAME = "Sentinel-2 spectral indices"
    GROUP = "sentinel2"
    TAGS = "sentinel-2,s2,msi,ndvi,ndwi,mndwi,bsi,nbr,ndmi,iron oxide,ferrous,clay,mining,index"
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "band_map": "BAND_MAP", "indices": "INDICES"}
    HELP = (
        "Computes spectral indices of a Sentinel-2 scene, one band per index, for mapping vegetation, water, bare "
        "ground and the iron-oxide and clay signatures of mines and alteration.\n\n"
        "The input is a multi-band Sentinel-2 raster whose bands are named (B2, B04, 'Band 8A', ...; or give a "
        "band map), or a folder of per-band files as delivered (names ending in _B02.tif, _B8A.jp2 ...; 20 m and "
        "60 m bands are resampled bilinearly to 10 m, the log says so). Digital numbers become reflectance "
        "(DN / 10000, with the -1000 offset of processing baseline 04.00 and later when the metadata say so; an "
        "8-bit raster, as Sentinel Hub's default sampleType AUTO writes, is taken as reflectance x 255, with a "
        "warning). "
        "Where a denominator is zero, the index is nodata. Every chosen index whose bands the input has is "
        "computed; the others are skipped and listed (an RGB chip gives the iron oxide ratio only).")
    PARAM_HELP = {
        **S2_INPUT_HELP,
        "INDICES": "Indices to compute: " + "; ".join(f"{k}: {v[2]}" for k, v in INDICES.items()) + ".",
    }
    OUTPUT_HELP = {
        "OUTPUT": "Float32 raster, one band per index (band names = index names), nodata -9999.",
        "VALID_PIXELS": "Number of valid (not nodata) pixels.",
        "INDICES_SKIPPED": "The chosen indices whose bands the input lacks (comma-separated; empty when none); "
                           "the log says which bands each needs.",
    }
    REFERENCES = [
        "Rouse, J. W. et al. (1974). Monitoring vegetation systems in the Great Plains with ERTS. Third ERTS "
        "Symposium, NASA SP-351, vol. 1, 309-317 (NDVI).",
        "McFeeters, S. K. (1996). The use of the Normalized Difference Water Index (NDWI) in the delineation of "
        "open water features. International Journal of Remote Sensing 17(7), 1425-1432.",
        "Xu, H. (2006). Modification of normalised difference water index (NDWI) to enhance open water features "
        "in remotely sensed imagery. International Journal of Remote Sensing 27(14), 3025-3033 (MNDWI).",
        "Rikimaru, A., Roy, P. S. and Miyatake, S. (2002). Tropical forest cover density mapping. Tropical "
        "Ecology 43(1), 39-47 (bare soil index).",
        "Key, C. H. and Benson, N. C. (2006). Landscape assessment. In: Lutes, D. C. et al., FIREMON: Fire "
        "Effects Monitoring and Inventory System. USDA Forest Service RMRS-GTR-164-CD, LA 1-55 (NBR).",
        "USGS. Landsat Surface Reflectance-derived Spectral Indices, product guide (NBR2).",
        "Wilson, E. H. and Sader, S. A. (2002). Detection of forest harvest type using multiple dates of Landsat "
        "TM imagery. Remote Sensing of Environment 80, 385-396 (NDMI).",
        "Segal, D. (1982). Theoretical basis for differentiation of ferric-iron bearing minerals, using Landsat "
        "MSS data. Proc. 2nd Thematic Conference on Remote Sensing for Exploratory Geology, Fort Worth, 949-951 "
        "(the iron oxide, ferrous minerals and clay ratios, as image-processing software applies them to "
        "Landsat TM bands).",
        "van der Meer, F. D. et al. (2014). Potential of ESA's Sentinel-2 for geological applications. "
        "Remote Sensing of Environment 148, 124-133.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        add_s2_input(self)
        self._add(QgsProcessingParameterEnum("INDICES", self.tr("Indices"), options=INDEX_NAMES, allowMultiple=True,
                                             defaultValue=list(range(len(INDEX_NAMES)))))
        self.add_raster_output("OUTPUT", "Spectral indices")
        self.add_value_output("VALID_PIXELS", "Valid pixels")
        self.add_value_output("INDICES_SKIPPED", "Indices skipped for lack of bands", kind="string")

    def process(self, parameters, context, feedback):
        chosen = self.parameterAsEnums(parameters, "INDICES", context)
        if not chosen:
            raise self.fail("INDICES", "No index was chosen.", "Choose at least one index.")
        asked = [INDEX_NAMES[i] for i in sorted(set(chosen))]
        out_path = self.output_path(parameters, "OUTPUT", context, feedback)
        path, band_map, _ = s2_input_path(self, parameters, context, with_crs=False)
        stats = indices_map(path, out_path, asked, band_map=band_map, mask_clouds=cloud_mask(self, parameters, context),
                            memory_mb=self.memory_mb(), feedback=feedback)
        self.style_output(context, out_path, INDEX_STYLE)
        return {"OUTPUT": out_path, "VALID_PIXELS": stats["valid_pixels"],
                "INDICES_SKIPPED": ", ".join(stats["skipped"])}
