"""oremap:import_spectrometer_product - a sensor product as one GeoTIFF with wavelengths."""

import os

from qgis.core import QgsProcessingUtils

from ..core.hyperspectral import sensor_products
from . import styles
from .base import OreMapAlgorithm


class ImportSpectrometerProduct(OreMapAlgorithm):
    NAME = "import_spectrometer_product"
    DISPLAY_NAME = "Import an imaging spectrometer product"
    GROUP = "hyperspectral"
    TAGS = "emit,enmap,prisma,aviris,aviris-ng,import,netcdf,hdf5,he5,glt,orthorectify,reflectance,wavelength"
    HELP = (
        "Writes an imaging spectrometer product as delivered to one tiled, compressed float32 GeoTIFF of "
        "reflectance, with each band's centre wavelength and FWHM (nm) in its metadata, ready to open in QGIS and "
        "in every OreMap algorithm. The hyperspectral algorithms also accept these products directly as their "
        "raster and make this GeoTIFF on the way (once per product).\n\n"
        "EMIT L2A RFL (V001 NetCDF4): orthorectified onto the product's own map grid (EPSG:4326) with its "
        "geometry lookup table (location/glt_x, glt_y); bands with good_wavelengths = 0 left out; the fill value "
        "and, when the acquisition's L2A mask granule (EMIT_L2A_MASK_001_...nc, or collection 002's "
        "EMIT_L2A_MASK_002_...nc) lies beside it, pixels with the Aggregate Flag become nodata; without one the "
        "log says so.\n"
        "EnMAP L2A (METADATA.XML with the image as ordered: GeoTIFF, ENVI BSQ/BIL/BIP or JPEG2000): band "
        "centres, FWHM, gains and offsets from METADATA.XML; the VNIR and SWIR overlap handled as below; bands "
        "that hold only the nodata value (water-vapour bands the processor fills) left out; pixels flagged in "
        "QL_QUALITY_CLOUD, _CLOUDSHADOW, _CIRRUS (any cirrus level, thin to thick) and _SNOW beside it become "
        "nodata (_HAZE does not: the processor corrects haze).\n"
        "PRISMA L2D (HDF-EOS5): the VNIR and SWIR cubes joined into one spectrum sorted by wavelength, scaled "
        "with L2ScaleMin/Max, unused bands left out, pixels that are 0 in every band nodata; from "
        "VNIR_/SWIR_PIXEL_L2_ERR_MATRIX, a pixel flagged in any band kept becomes nodata and a band flagged in "
        "most pixels is left out, as are bands flagged each in pixels of their own when together they would leave "
        "over 5 % of the pixels as nodata.\n"
        "EnMAP and PRISMA products may also be given as the ZIP archive they are delivered in "
        "(ENMAP01-...L2A...ZIP, PRS_L2D_...zip); its files are extracted to the Processing temporary folder while "
        "they are read.\n"
        "AVIRIS-Classic / AVIRIS-NG (ENVI, or any raster with wavelength metadata): bad bands (bbl) left out, "
        "reflectance scale applied.\n\n"
        "Where two detectors overlap (PRISMA and EnMAP near 950 nm, AVIRIS-Classic near 675 and 1260 nm) the "
        "overlap is cut at its middle wavelength and each detector's edge bands beyond the cut are left out; "
        "the log says which. Nodata is -9999.")
    PARAM_HELP = {
        "SCALE": "For an ENVI or GeoTIFF cube: reflectance = value / scale (10000 for reflectance x 10000, 100 for "
                 "per cent); 0 reads it from the raster's metadata or guesses it (integers above 100: 10000). "
                 "Sensor products carry their own scale, which is always used.",
        "INPUT": "The product file: EMIT_L2A_RFL_*.nc, an EnMAP L2A *-METADATA.XML (or its *-SPECTRAL_IMAGE file), "
                 "PRS_L2D_*.he5, an EnMAP or PRISMA product's ZIP as delivered, or an ENVI / GeoTIFF cube with wavelengths (AVIRIS-Classic, AVIRIS-NG).",
    }
    OUTPUT_HELP = {
        "OUTPUT": "Float32 GeoTIFF of reflectance, bands sorted by wavelength, wavelength and FWHM in each band's "
                  "metadata, nodata -9999; it loads in true colour (the bands nearest 640, 550 and 460 nm, "
                  "stretched to their 2-98 % cut; style saved beside it as .qml).",
        "BANDS": "Number of bands written.",
    }
    REFERENCES = [
        "Green, R. O. et al. (2023). EMIT L2A Estimated Surface Reflectance and Uncertainty and Masks 60 m V001. "
        "NASA EOSDIS LP DAAC, doi:10.5067/EMIT/EMITL2ARFL.001; EMIT L2A product user guide.",
        "DLR (2023). EnMAP HSI Level 2A product specification and METADATA.XML description (processor v1.x).",
        "ASI (2020). PRISMA Products Specification Document, issue 2.3 (L2D HDF-EOS5 product).",
        "Green, R. O. et al. (1998). Imaging spectroscopy and the Airborne Visible/Infrared Imaging Spectrometer "
        "(AVIRIS). Remote Sensing of Environment 65, 227-248.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        from qgis.core import QgsProcessingParameterFile

        self._add(QgsProcessingParameterFile(
            "INPUT", self.tr("Product file"), fileFilter="Imaging spectrometer products (*.nc *.he5 *.h5 *.xml "
                                                         "*.XML *.zip *.ZIP *.tif *.TIF *.img *.dat *.bsq *.bil "
                                                         "*.bip);;"
                                                         "All files (*.*)"))
        self.add_number("SCALE", "Reflectance scale factor of a plain raster (0 = automatic)", 0.0, 0.0,
                        advanced=True)
        self.add_raster_output("OUTPUT", "Reflectance GeoTIFF")
        self.add_value_output("BANDS", "Bands written")

    def process(self, parameters, context, feedback):
        path = self.parameterAsFile(parameters, "INPUT", context)
        self._parameter_overrides.update(raster="INPUT", wavelengths="INPUT", scale="SCALE")
        if not path or not os.path.exists(path):
            raise self.fail("INPUT", f"'{path}' does not exist.", "Choose the product file.")
        scale = self.parameterAsDouble(parameters, "SCALE", context)
        if sensor_products.detect(path):
            if scale:
                feedback.warning("Reflectance scale factor (SCALE) is for plain rasters: the product's own scale "
                                 "(its metadata) is applied instead.")
        out_path = self.output_path(parameters, "OUTPUT", context, feedback)
        # a product's ZIP is extracted into the Processing temporary folder while it is read
        with sensor_products.unpacked(path, QgsProcessingUtils.tempFolder(), feedback) as source:
            if sensor_products.detect(path):
                product = sensor_products.open_product(source, feedback)
            else:
                product = sensor_products.open_raster_product(source, feedback, scale=scale or None)
            self._parameter_overrides["output"] = "OUTPUT"
            sensor_products.write_geotiff(product, out_path, memory_mb=self.memory_mb(), feedback=feedback)
        self.style_output(context, out_path, styles.true_colour(product.band_info.centers))
        return {"OUTPUT": out_path, "BANDS": product.band_info.n_bands}
