"""Photographs (JPEG, PNG, TIFF) in the one ingest pipeline, with their manifest.

An import may carry fundus photographs next to DICOM files, plus one manifest CSV
named ``manifest.csv`` (anywhere in the upload, folder or zip; columns in
``imaging.photo.manifest``). ``attach`` runs on every import before any file is
read: it takes the manifest out of the items, matches each manifest row to the
file whose relative path ends with the row's ``filename`` (at a folder boundary;
zip members count as folders), and refuses, each on its own report line:

- every manifest problem, with its line (the good rows still import);
- a manifest row with no file of that name ("manifest line N: no photograph ...");
- the files one row matches when it matches more than one (give the folder too);
- the photographs of a manifest line that has problems.

Files are recognised by content when they are read (``prepare_file``): a DICOM
file (``DICM`` at byte 128) takes the DICOM path untouched; JPEG/PNG/TIFF bytes,
and any file the manifest lists, are photographs. A photograph without a manifest
row (or in an import without a manifest) is refused with the reason; one that
does not decode is refused with the decoder's reason. A listed photograph is
converted (``photo.photo_to_dicom``: pixels only, every metadata block dropped)
into an Ophthalmic Photography image that carries the manifest's *original*
patient and visit identifiers in memory only, and is then handed to
``prepare.prepare`` like any uploaded DICOM file: validation, de-identification
(the keyed pseudonym of the patient, HMAC UIDs, the key-store mappings), burned-in
text detection and quarantine, encoding. (The header rule that holds every
photograph class for review is replaced, for these files only, by reading the
pixels for text; with REFSET_BURNED_IN_OCR off every photograph is held.) So
the same patient gets the same pseudonym whether they arrive as DICOM or as
photographs, in any import.

Grouping: one study per (patient, visit); one series per (visit, eye, image
size), so the photographs of one eye at one visit are one case (a second
resolution of the same eye makes a second series rather than failing the
series' geometry check). The pre-de-identification UIDs are derived from those
keys (and the decoded pixels for the instance), so re-importing the same
photograph is a duplicate. The visit identifier is kept in the key store as a
``visit_id`` mapping whose replacement is the study's de-identified UID.

Sites: the manifest's optional ``site`` column names the hospital or screening
site of the row's visit, by the site's code (``S01``, any case) or its name. When
the import knows its project (``attach(items, project)``), every named site must be
one of the project's sites, else the row is refused on its own line, naming the
site and the project's sites, with its photographs. After indexing,
``apply_sites`` gives each visit's study, and the cases of its series, the site
its rows name (over the import's own ``site`` parameter, which stays the site of
everything the manifest does not place). Rows of one visit naming two sites are a
manifest problem (manifest.py).

File names: a photograph's file name (and its folders) is never stored, logged or
reported. Its report line is named by its manifest line ("photo, manifest line
N") or, when it has none, by its position in the import ("file N of the
import") with the first 12 hex digits of its SHA-256 in the reason, which a
manager can find with ``sha256sum``. Limits refusals (too large, zip guards) that
happen before a file is read are renamed the same way when the manifest lists
the file. DICOM files keep their names in the report, as before.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections import defaultdict

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from annotation_server.imaging.deid import Deidentifier, Mapping
from annotation_server.imaging.ingest.prepare import Prepared, prepare
from annotation_server.imaging.ingest.sources import Candidate, Item, Rejection
from annotation_server.imaging.photo import (
    PhotoError,
    decode_photo,
    dicom_bytes,
    photo_to_dicom,
)
from annotation_server.imaging.photo.manifest import ManifestProblem, parse_manifest_partial

MANIFEST_NAME = "manifest.csv"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
VISIT_KIND = "visit_id"
SERIES_NUMBER = {"OD": 1, "OS": 2}


def _path(name: str) -> str:
    return name.replace("\\", "/").replace("!/", "/")


def is_manifest(name: str) -> bool:
    return posixpath.basename(_path(name)).lower() == MANIFEST_NAME


def looks_like_photo(head: bytes) -> bool:
    """JPEG, PNG or TIFF by their signatures (a DICOM file, whose 128-byte
    preamble may hold a TIFF header, is not a photograph)."""
    if head[128:132] == b"DICM":
        return False
    return (
        head[:3] == b"\xff\xd8\xff"
        or head[:8] == b"\x89PNG\r\n\x1a\n"
        or head[:4] in (b"II*\x00", b"MM\x00*")
    )


def manifest_label(line: int) -> str:
    return _("photo, manifest line %(line)s") % {"line": line}


# The manifest parser's problems (imaging.photo.manifest.PROBLEMS, English, free of
# Django) as catalogue messages: the same texts, marked for translation here.
PROBLEM_TEXTS = {
    "encoding": gettext_noop("not UTF-8 or GB18030 text (%(reason)s)"),
    "csv": gettext_noop("not valid CSV: %(error)s"),
    "empty_file": gettext_noop("the manifest is empty (no header row)"),
    "no_rows": gettext_noop("no photographs listed"),
    "missing_column": gettext_noop("required column is missing"),
    "unnamed_column": gettext_noop("column without a name"),
    "unknown_column": gettext_noop("unknown column (expected: %(expected)s)"),
    "duplicate_column": gettext_noop("column appears twice"),
    "field_count": gettext_noop("%(found)s fields, the header has %(expected)s"),
    "empty": gettext_noop("empty"),
    "too_long": gettext_noop("longer than %(max)s characters"),
    "absolute_filename": gettext_noop("must be a relative name (no /, .. or drive)"),
    "duplicate_filename": gettext_noop("listed twice (also on line %(first_line)s)"),
    "bad_laterality": gettext_noop("%(value)s is not OD or OS"),
    "visit_of_another_patient": gettext_noop(
        "visit %(visit)s belongs to another patient on line %(first_line)s"
    ),
    "visit_at_two_sites": gettext_noop(
        "visit %(visit)s is at site %(site)s on line %(first_line)s"
    ),
}


def problem_text(problem: ManifestProblem) -> str:
    """A manifest problem in the active language, its parameters filled in."""
    text = _(PROBLEM_TEXTS[problem.code])
    return text % problem.params if problem.params else text


def _suffixes(name: str) -> list[str]:
    parts = [p for p in _path(name).split("/") if p]
    return ["/".join(parts[i:]) for i in range(len(parts))]


def project_sites(project) -> dict[str, object]:
    """The project's sites by the names a manifest may use: code (upper case) and
    institution name."""
    out: dict[str, object] = {}
    for site in project.sites.all():
        out[site.code.upper()] = site
        out.setdefault(site.name.strip(), site)
    return out


def site_of(row, sites: dict[str, object]):
    """The Site a manifest row names (None for no site column value or an unknown one)."""
    if not row.site:
        return None
    return sites.get(row.site.upper()) or sites.get(row.site.strip())


def _unknown_sites(rows, project) -> tuple[list, list[Rejection]]:
    """The rows whose site is known (or not given), and a rejection per row whose
    site is not one of the project's sites."""
    sites = project_sites(project)
    codes = sorted({s.code for s in sites.values()})
    good, bad = [], []
    for row in rows:
        if not row.site or site_of(row, sites) is not None:
            good.append(row)
            continue
        reason = (
            _("unknown site %(site)s: not one of this project's sites (%(sites)s)")
            % {"site": repr(row.site), "sites": ", ".join(codes)}
            if codes
            else _("unknown site %(site)s: this project lists no sites (add them in its settings)")
            % {"site": repr(row.site)}
        )
        where = _("manifest line %(line)s, column %(column)s") % {
            "line": row.line,
            "column": "site",
        }
        bad.append((row, Rejection(where, reason)))
    return good, bad


def attach(items: list[Item], project=None) -> list[Item]:
    """The import's items with the manifest taken out and its problems, missing
    files and ambiguous matches as rejections; every candidate knows its label,
    its manifest row (or none) and whether the import has a manifest. With the
    `project`, rows naming a site that is not one of its sites are refused too."""
    manifests = [i for i, it in enumerate(items) if is_manifest(it.name)]
    out: list[Item] = []
    rows, problems, refused = [], [], {}
    if manifests:
        first = items[manifests[0]]
        if isinstance(first, Rejection):
            out.append(Rejection(MANIFEST_NAME, first.reason))
        else:
            try:
                if first.size > MAX_MANIFEST_BYTES:
                    raise ValueError(_("larger than 16 MB"))
                rows, problems, refused = parse_manifest_partial(first.read())
            except (OSError, ValueError) as exc:
                out.append(
                    Rejection(
                        MANIFEST_NAME, _("could not read the manifest (%(error)s)") % {"error": exc}
                    )
                )
        for p in problems:
            where = (
                _("manifest line %(line)s, column %(column)s")
                if p.column
                else _("manifest line %(line)s")
            ) % {"line": p.line, "column": p.column}
            out.append(Rejection(where, problem_text(p)))
        if project is not None and rows:
            rows, unknown = _unknown_sites(rows, project)
            for row, rejection in unknown:
                out.append(rejection)
                refused.setdefault(row.filename, row.line)
        for i in manifests[1:]:
            out.append(
                Rejection(
                    _("manifest %(n)s") % {"n": i + 1},
                    _("a second manifest.csv in one import: only the first one is read"),
                )
            )
    state = ("ok" if rows else "unusable") if manifests else ""
    files = [(i, it) for i, it in enumerate(items) if i not in manifests]
    by_suffix: dict[str, list[int]] = defaultdict(list)
    for i, it in files:
        for suffix in _suffixes(it.name):
            by_suffix[suffix].append(i)
    row_of: dict[int, object] = {}
    ambiguous: dict[int, int] = {}
    for row in rows:
        matches = by_suffix.get(row.filename, [])
        if not matches:
            out.append(
                Rejection(
                    _("manifest line %(line)s") % {"line": row.line},
                    _("no photograph with this file name was uploaded"),
                )
            )
        elif len(matches) > 1:
            for i in matches:
                ambiguous[i] = row.line
        else:
            row_of[matches[0]] = row
    bad_line: dict[int, int] = {}
    for name, line in refused.items():
        for i in by_suffix.get(name, []):
            if i not in row_of:
                bad_line[i] = line
    for position, (i, it) in enumerate(files, 1):
        row = row_of.get(i)
        label = manifest_label(row.line) if row else _("file %(n)s of the import") % {"n": position}
        if i in ambiguous:
            out.append(
                Rejection(
                    label,
                    _("manifest line %(line)s matches more than one file: give its folder too")
                    % {"line": ambiguous[i]},
                )
            )
        elif i in bad_line:
            out.append(
                Rejection(
                    manifest_label(bad_line[i]),
                    _("its manifest line has problems (listed above): not imported"),
                )
            )
        elif isinstance(it, Rejection):
            out.append(Rejection(label, it.reason) if row else it)
        else:
            it.label, it.photo_row, it.manifest = label, row, state
            out.append(it)
    return out


def _uid(*parts: str) -> str:
    """A UID derived from `parts` (the photograph's identity before de-identification,
    which replaces it with the project's keyed UID; never stored as it is)."""
    digest = hashlib.sha256("\x00".join(("refset-photo", *parts)).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


# The photograph's capture time lives only in the metadata the conversion drops, so
# the Ophthalmic Photography image's Type 1 times (ContentDate/Time,
# AcquisitionDateTime) hold this fixed value (shifted like any date when the project
# shifts dates) instead of the time of the import: the same photograph and manifest
# row then make the same DICOM bytes, the same content-addressed object, and a
# re-import stores nothing new. InstanceCreationDate/Time (Type 3) are left out.
UNKNOWN_DATE, UNKNOWN_TIME = "19000101", "000000"


def _fixed_times(ds) -> None:
    ds.ContentDate, ds.ContentTime = UNKNOWN_DATE, UNKNOWN_TIME
    ds.AcquisitionDateTime = UNKNOWN_DATE + UNKNOWN_TIME
    for keyword in ("InstanceCreationDate", "InstanceCreationTime"):
        if keyword in ds:
            delattr(ds, keyword)


def prepare_file(
    deid: Deidentifier, candidate: Candidate, data: bytes, *, dicom=prepare
) -> Prepared:
    """One file of an import, recognised by content: DICOM by the DICOM path
    (``dicom``: prepare.prepare), a photograph converted first (see the module
    docstring) and then prepared the same way."""
    if candidate.photo_row is None and not looks_like_photo(data[:132]):
        return dicom(deid, candidate.name, data)
    label = candidate.label or _("a photograph")
    row = candidate.photo_row
    if not candidate.manifest:
        return Prepared(
            label,
            reason=_(
                "a photograph needs a manifest: add manifest.csv (columns filename, "
                "patient_id, visit_id, laterality) to the import"
            ),
        )
    if row is None and candidate.manifest == "unusable":
        return Prepared(
            label,
            reason=_("the manifest lists no usable photograph (see its problems): not imported"),
        )
    if row is None:
        return Prepared(
            label,
            reason=_("photograph not listed in the manifest (sha256 %(sha)s…)")
            % {"sha": hashlib.sha256(data).hexdigest()[:12]},
        )
    try:
        photo = decode_photo(data)
    except PhotoError as exc:
        return Prepared(label, reason=_("not a readable photograph (%(error)s)") % {"error": exc})
    rows, cols = photo.pixels.shape[:2]
    study_uid = _uid("study", row.patient_id, row.visit_id)
    series_uid = _uid("series", row.patient_id, row.visit_id, row.laterality, f"{rows}x{cols}")
    pixels = hashlib.sha256(photo.pixels.tobytes()).hexdigest()
    camera = row.camera.split(None, 1)
    try:
        ds = photo_to_dicom(
            photo,
            laterality=row.laterality,
            patient_id=row.patient_id,
            patient_name="",
            study_id=row.visit_id,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=_uid("sop", series_uid, pixels),
            series_number=SERIES_NUMBER.get(row.laterality, 1),
            instance_number=row.line,
            manufacturer=camera[0] if camera else "",
            model=camera[1] if len(camera) > 1 else "",
        )
    except PhotoError as exc:
        return Prepared(label, reason=_("not a readable photograph (%(error)s)") % {"error": exc})
    _fixed_times(ds)
    prepared = dicom(deid, label, dicom_bytes(ds), built_here=True)
    if not prepared.rejected:
        prepared.mappings.append(Mapping(VISIT_KIND, row.visit_id, deid.uid(study_uid)))
        if prepared.facts is not None:  # the instance records the file it came from
            prepared.facts.instance["source_format"] = source_format(photo)
    return prepared


def source_format(photo) -> str:
    """The photograph file's format as Instance.source_format records it (a
    multi-picture JPEG, MPO, is JPEG)."""
    return "JPEG" if photo.format in ("JPEG", "MPO") else photo.format


def apply_sites(project, deid: Deidentifier, candidates) -> int:
    """Give each visit's study, and the cases of its series, the site its manifest
    rows name (the rows of `candidates`, as ``attach`` left them; rows of unknown
    sites were refused there). Returns the number of studies placed."""
    from annotation_server.imaging.models import Study
    from annotation_server.projects.models import Case

    sites = project_sites(project)
    by_study: dict[str, object] = {}
    for candidate in candidates:
        row = getattr(candidate, "photo_row", None)
        site = site_of(row, sites) if row is not None else None
        if site is not None:
            by_study[deid.uid(_uid("study", row.patient_id, row.visit_id))] = site
    placed = 0
    for study_uid, site in by_study.items():
        placed += Study.objects.filter(project=project, study_uid=study_uid).update(site=site)
        Case.objects.filter(project=project, series__study__study_uid=study_uid).update(site=site)
    return placed
