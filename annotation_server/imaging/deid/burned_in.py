"""Which images may show identifying text or features in their pixels (burned-in
annotations, screen captures, photographs): decided from the header alone, before
anything is stored, so such images go to quarantine. Pure pydicom (no Django).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from .elements import as_list, peek, text_of

# SOP classes that usually carry burned-in text or a recognisable face.
_SC = "1.2.840.10008.5.1.4.1.1.7"
RISKY_SOP_CLASSES: dict[str, str] = {
    _SC: "Secondary Capture",
    _SC + ".1": "Multi-frame Single Bit Secondary Capture",
    _SC + ".2": "Multi-frame Grayscale Byte Secondary Capture",
    _SC + ".3": "Multi-frame Grayscale Word Secondary Capture",
    _SC + ".4": "Multi-frame True Color Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound (retired)",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound",
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced Ultrasound Volume",
    "1.2.840.10008.5.1.4.1.1.6.3": "Photoacoustic",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame (retired)",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame",
    "1.2.840.10008.5.1.4.1.1.14.1": "Intravascular OCT (presentation)",
    "1.2.840.10008.5.1.4.1.1.14.2": "Intravascular OCT (processing)",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
}
RISKY_SOP_PREFIXES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.77.1": "Visible Light (photograph / video)",
}
RISKY_MODALITIES: dict[str, str] = {
    "US": "ultrasound",
    "IVUS": "intravascular ultrasound",
    "SC": "secondary capture",
    "XC": "external camera photograph",
    "ES": "endoscopy",
    "GM": "general microscopy",
    "OP": "ophthalmic photograph",
    "DOC": "document",
    "VIDEO": "video",
}
SCREEN_IMAGE_TYPES = ("SCREEN SAVE", "SCREENSHOT", "SCREEN CAPTURE", "CAPTURE", "DOSE REPORT")
SCREEN_DESCRIPTIONS = ("dose report", "screen save", "screen capture", "patient protocol")


def burned_in_risk(ds: Dataset) -> str | None:
    """Why pixel data may show identifying text or features, or None.

    Flags BurnedInAnnotation / RecognizableVisualFeatures YES, SOP classes and modalities
    that usually carry burned-in text (secondary capture, ultrasound, video and photographs,
    documents) and screen captures (ImageType SCREEN SAVE-like values, SECONDARY/DERIVED
    images with a capture ConversionType, dose-report descriptions).
    """
    if text_of(peek(ds, "BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation is YES"
    if text_of(peek(ds, "RecognizableVisualFeatures", "")).upper() == "YES":
        return "RecognizableVisualFeatures is YES"
    sop_class = text_of(peek(ds, "SOPClassUID", ""))
    if sop_class in RISKY_SOP_CLASSES:
        return f"SOP class {RISKY_SOP_CLASSES[sop_class]} often carries burned-in text"
    for prefix, name in RISKY_SOP_PREFIXES.items():
        if sop_class.startswith(prefix + "."):
            return f"SOP class {name} often shows identifying text or features"
    modality = text_of(peek(ds, "Modality", "")).upper()
    if modality in RISKY_MODALITIES:
        return f"modality {modality} ({RISKY_MODALITIES[modality]}) often carries burned-in text"
    image_type = [str(v).upper() for v in as_list(peek(ds, "ImageType", []))]
    for marker in SCREEN_IMAGE_TYPES:
        if any(marker in v for v in image_type):
            return f"ImageType {marker} is a screen capture"
    conversion = text_of(peek(ds, "ConversionType", "")).upper()
    if conversion and ("SECONDARY" in image_type or "DERIVED" in image_type or not image_type):
        return f"secondary image with ConversionType {conversion}"
    descriptions = " ".join(
        text_of(peek(ds, k, "")).lower() for k in ("SeriesDescription", "StudyDescription")
    )
    for marker in SCREEN_DESCRIPTIONS:
        if marker in descriptions:
            return f"description mentions {marker!r} (screen capture)"
    return None
