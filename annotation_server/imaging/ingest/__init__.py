"""DICOM ingest: sources (files, folders, zips, uploads, STOW, PACS) -> validation ->
de-identification -> content-addressed storage -> index -> cases, with a per-file report."""
