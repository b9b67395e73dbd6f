"""The SOP classes and transfer syntaxes RefSet's DIMSE services offer.

The ingest validator (imaging.ingest.prepare.parse) takes any object that is an
image (pixel data, rows, columns, bits allocated) in a transfer syntax it can
decode, and the de-identifier quarantines the classes that often carry burned-in
text (deid.burned_in.RISKY_SOP_CLASSES). So the storage contexts are the image
storage classes: cross-sectional, projection radiography, secondary capture and
the photographic (ophthalmic, VL) ones. Non-image objects (SR, SEG, PR, KO, RT
plans, waveforms) are refused at negotiation: the validator would reject every
one of them anyway. The transfer syntaxes are the uncompressed ones plus the
compressed ones pydicom decodes with the installed plugins (pylibjpeg,
pyjpegls); an object whose syntax cannot be decoded here is still refused per
object, by the validator, with its reason.
"""

from __future__ import annotations

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import sop_class as sc

IMAGE_STORAGE_CLASSES: tuple[str, ...] = tuple(
    str(uid)
    for uid in (
        sc.CTImageStorage,
        sc.EnhancedCTImageStorage,
        sc.LegacyConvertedEnhancedCTImageStorage,
        sc.MRImageStorage,
        sc.EnhancedMRImageStorage,
        sc.EnhancedMRColorImageStorage,
        sc.LegacyConvertedEnhancedMRImageStorage,
        sc.ComputedRadiographyImageStorage,
        sc.DigitalXRayImageStorageForPresentation,
        sc.DigitalXRayImageStorageForProcessing,
        sc.DigitalMammographyXRayImageStorageForPresentation,
        sc.DigitalMammographyXRayImageStorageForProcessing,
        sc.DigitalIntraOralXRayImageStorageForPresentation,
        sc.DigitalIntraOralXRayImageStorageForProcessing,
        sc.XRayAngiographicImageStorage,
        sc.XRayRadiofluoroscopicImageStorage,
        sc.NuclearMedicineImageStorage,
        sc.PositronEmissionTomographyImageStorage,
        sc.UltrasoundImageStorage,
        sc.UltrasoundMultiFrameImageStorage,
        sc.SecondaryCaptureImageStorage,
        sc.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        sc.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        sc.MultiFrameSingleBitSecondaryCaptureImageStorage,
        sc.MultiFrameTrueColorSecondaryCaptureImageStorage,
        sc.OphthalmicPhotography8BitImageStorage,
        sc.OphthalmicPhotography16BitImageStorage,
        sc.OphthalmicTomographyImageStorage,
        sc.VLPhotographicImageStorage,
        sc.VLEndoscopicImageStorage,
        sc.VLMicroscopicImageStorage,
        sc.VLSlideCoordinatesMicroscopicImageStorage,
        sc.DermoscopicPhotographyImageStorage,
    )
)

UNCOMPRESSED: tuple[str, ...] = (
    str(ExplicitVRLittleEndian),
    str(ImplicitVRLittleEndian),
    str(DeflatedExplicitVRLittleEndian),
    str(ExplicitVRBigEndian),
)
ACCEPTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    *UNCOMPRESSED,
    str(JPEGBaseline8Bit),
    str(JPEGExtended12Bit),
    str(JPEGLosslessSV1),
    str(JPEGLSLossless),
    str(JPEGLSNearLossless),
    str(JPEG2000Lossless),
    str(JPEG2000),
    str(RLELossless),
)
# What RefSet proposes as a C-GET SCU (storage sub-operations come back to it):
# one context per image class; at most 128 contexts fit in one association.
GET_TRANSFER_SYNTAXES: tuple[str, ...] = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))
