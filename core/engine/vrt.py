"""VRT XML over one raster: every band as it is (type, description, alpha, metadata, nodata), optionally a range of
rows, a scale and offset per band, and a per-dataset mask built from given sources. Used for a batch part (a row
range of a scene, :func:`core.scaleout.batch.row_vrt`) and for a Sentinel-2 stack whose SCL band masks clouds
(:func:`core.sentinel2.sentinel2._scl_masked_vrt_xml`)."""

import os

import numpy as np

from .affine_ops import compose


def escape(text):
    """``text`` for an XML element or a double-quoted attribute."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def band_source(path, band, part=None, extra=""):
    """A ComplexSource of band ``band`` of ``path`` (``"mask,1"``: its per-dataset mask) over ``part`` =
    ``(row0, row1, width)`` (the whole raster when None), with ``extra`` XML (e.g. ``<LUT>``, ``<NODATA>``)."""
    return (f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(os.path.abspath(path))}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>{_rects(part)}{extra}</ComplexSource>")


def has_file_mask(ds):
    """Whether the open raster ``ds`` has a per-dataset mask (internal, ``.msk`` or an alpha band)."""
    from rasterio.enums import MaskFlags

    return any(MaskFlags.per_dataset in flags for flags in ds.mask_flag_enums)


def _rects(part):
    if part is None:
        return ""
    row0, row1, width = part
    return (f'<SrcRect xOff="0" yOff="{row0}" xSize="{width}" ySize="{row1 - row0}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{row1 - row0}"/>')


def raster_vrt_xml(path, ds, rows=None, gain=None, bias=None, mask_sources=None, fallback_type=None):
    """The VRT of raster ``path`` (open as ``ds``): rows ``rows = (row0, row1)`` (all by default), georeferenced where
    they lie, with the dataset's metadata (default and ENVI domains), each band's type, description, alpha
    colour interpretation, metadata and nodata. ``gain``/``bias`` (numbers, or one per band) become each band's
    scale and offset. ``mask_sources``: XML sources of the dataset's mask band (255 valid, 0 masked), laid in order;
    None keeps the file's own per-dataset mask where it has one. ``fallback_type``: the VRT type of a band whose
    type a VRT cannot carry here (:func:`core.engine.raster.vrt_type`); None refuses such bands (ValueError)."""
    from rasterio.enums import ColorInterp

    from .raster import vrt_type

    row0, row1 = (0, ds.height) if rows is None else (int(rows[0]), int(rows[1]))
    part = None if rows is None else (row0, row1, ds.width)
    gt = compose(ds.transform, ds.transform.translation(0, row0)).to_gdal()
    lines = [f'<VRTDataset rasterXSize="{ds.width}" rasterYSize="{row1 - row0}">']
    if ds.crs is not None:
        lines.append(f"  <SRS>{escape(ds.crs.to_wkt())}</SRS>")
    lines.append("  <GeoTransform>" + ", ".join(repr(float(v)) for v in gt) + "</GeoTransform>")
    for domain in [None] + [d for d in ds.tag_namespaces() if d == "ENVI"]:
        lines += _metadata(ds.tags(ns=domain) if domain else ds.tags(), "  ", domain)
    for b in range(1, ds.count + 1):
        kind = vrt_type(ds.dtypes[b - 1]) or fallback_type
        if kind is None:
            raise ValueError(f"a VRT cannot carry band {b}'s type {ds.dtypes[b - 1]} here")
        lines.append(f'  <VRTRasterBand dataType="{kind}" band="{b}">')
        if ds.descriptions[b - 1]:
            lines.append(f"    <Description>{escape(ds.descriptions[b - 1])}</Description>")
        if ds.colorinterp[b - 1] == ColorInterp.alpha:   # an alpha band masks the others and is no reflectance
            lines.append("    <ColorInterp>Alpha</ColorInterp>")
        lines += _metadata(ds.tags(b), "    ")
        if ds.nodatavals[b - 1] is not None:
            lines.append(f"    <NoDataValue>{float(ds.nodatavals[b - 1])!r}</NoDataValue>")
        if gain is not None:
            band_gain, band_bias = (gain[b - 1], bias[b - 1]) if np.ndim(gain) else (gain, bias)
            lines.append(f"    <Offset>{float(band_bias)!r}</Offset>")
            lines.append(f"    <Scale>{float(band_gain)!r}</Scale>")
        lines.append(f"    {band_source(path, b, part)}")
        lines.append("  </VRTRasterBand>")
    if mask_sources is None:
        mask_sources = [band_source(path, "mask,1", part)] if has_file_mask(ds) else []
    if mask_sources:
        lines += ["  <MaskBand>", '    <VRTRasterBand dataType="Byte">']
        lines += ["      " + s for s in mask_sources]
        lines += ["    </VRTRasterBand>", "  </MaskBand>"]
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def _metadata(tags, indent, domain=None):
    if not tags:
        return []
    attr = f' domain="{domain}"' if domain else ""
    return ([f"{indent}<Metadata{attr}>"] + [f'{indent}  <MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in tags.items()]
            + [f"{indent}</Metadata>"])
