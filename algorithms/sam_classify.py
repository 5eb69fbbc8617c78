"""oremap:sam_classify - Spectral Angle Mapper / Spectral Information Divergence."""

from ..core.hyperspectral import mapping
from .base import LIBRARY_FORMATS, OreMapAlgorithm
from . import styles

METHODS = [("sam", "Spectral Angle Mapper (SAM)"), ("sid", "Spectral Information Divergence (SID)")]
#: the style of the best angle / divergence: low values (good matches) bright
SCORE_STYLE = {"kind": "ramp", "ramp": "Viridis", "invert": True}


class SamClassify(OreMapAlgorithm):
    NAME = "sam_classify"
    DISPLAY_NAME = "Spectral Angle Mapper classification"
    GROUP = "hyperspectral"
    TAGS = "sam,sid,spectral angle,mineral map,classification,hyperspectral,usgs"
    HELP = (
        "Maps minerals by comparing every pixel spectrum with reference spectra and assigning the best "
        "match. SAM measures the angle between spectra (insensitive to brightness, so shade and "
        "illumination matter little); SID measures the divergence between spectra seen as distributions.\n\n"
        "References come from a spectral library (resampled by wavelength to the image's bands, using "
        "the band centres and FWHM in the raster's metadata, bad bands left out) or from points on the "
        "raster (spectra of points with the same name are averaged). The raster is processed block by "
        "block, so scenes larger than memory work.")
    PARAM_HELP = {
        "INPUT": "Hyperspectral reflectance raster (GeoTIFF, ENVI, ...) with band wavelengths in its metadata "
                 "(or give them under the advanced wavelength parameter).",
        "LIBRARY": LIBRARY_FORMATS + " Leave empty when using endmember points.",
        "SPECTRA": "Names of the library spectra to use, e.g. 'Kaolinite CM9 BECKb; Alunite GDS84 Na03 BECKa' "
                   "(USGS splib07). A unique start of a name is enough and case does not matter. Empty: every "
                   "spectrum of the library.",
        "METHOD": "SAM (angle, radians) or SID (divergence).",
        "THRESHOLD": "Largest angle in radians (SAM) or divergence (SID) still accepted; pixels whose best "
                     "match is worse are unclassified (class 0). 0 = no limit. Typical SAM values: 0.05-0.15.",
        "SCALE": "Divisor turning stored values into reflectance, 0 = automatic (see the log). Angles do not "
                 "depend on it.",
    }
    OUTPUT_HELP = {
        "OUTPUT_CLASSES": "Class raster: 1..n = the reference spectra in order (names and colours in the layer "
                          "style and the GeoTIFF colour table), 0 = unclassified; nodata 255 (8-bit, up to 254 "
                          "spectra) or 65535 (16-bit, more spectra: a whole library).",
        "OUTPUT_SCORE": "Best angle (radians) or divergence per pixel: low values are good matches.",
        "VALID_PIXELS": "Number of valid (not nodata) pixels processed.",
    }
    REFERENCES = [
        "Kruse, F. A. et al. (1993). The Spectral Image Processing System (SIPS). Remote Sensing of "
        "Environment 44, 145-163.",
        "Chang, C.-I. (2000). An information-theoretic approach to spectral variability, similarity, and "
        "discrimination for hyperspectral image analysis. IEEE Trans. Inf. Theory 46(5), 1927-1932.",
        "Kokaly, R. F. et al. (2017). USGS Spectral Library Version 7. USGS Data Series 1035.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input()
        self.add_library_parameters(optional=True)
        self.add_endmember_points()
        self.add_enum("METHOD", "Method", [label for _, label in METHODS])
        self.add_number("THRESHOLD", "Maximum angle (rad) or divergence; 0 = no limit", 0.0, 0.0)
        self.add_band_parameters()
        self.add_raster_output("OUTPUT_CLASSES", "Class raster")
        self.add_raster_output("OUTPUT_SCORE", "Best angle / divergence raster", optional=True)
        self.add_value_output("VALID_PIXELS", "Pixels classified (valid pixels)")

    def process(self, parameters, context, feedback):
        raster, layer = self.raster_path(parameters, "INPUT", context)
        references, band_info, image_bands, (nodata, scale) = self.reference_spectra(
            parameters, context, feedback, raster, layer)
        method = METHODS[self.parameterAsEnum(parameters, "METHOD", context)][0]
        class_path = self.output_path(parameters, "OUTPUT_CLASSES", context, feedback)
        score_path = self.output_path(parameters, "OUTPUT_SCORE", context, feedback)
        stats = mapping.sam_map(
            raster, references, class_path, score_path, method=method,
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context) or None,
            band_info=band_info, image_bands=image_bands, scale=scale, nodata=nodata,
            memory_mb=self.memory_mb(), feedback=feedback,
            whole_library=image_bands is None and not self.parameterAsString(parameters, "SPECTRA", context).strip())
        counts = stats["class_counts"]
        empty = [name for name, count in counts.items() if not count]
        for name, count in counts.items():
            if count or len(counts) <= 30:
                feedback.info(f"  {name}: {count} pixels")
        if len(counts) > 30 and empty:
            feedback.info(f"  {len(empty)} of the {len(counts)} classes have no pixel.")
        self.style_output(context, class_path, styles.classes(stats["legend"]))
        results = {"OUTPUT_CLASSES": class_path, "VALID_PIXELS": stats["valid_pixels"]}
        if score_path:
            self.style_output(context, score_path, dict(SCORE_STYLE))
            results["OUTPUT_SCORE"] = score_path
        return results
