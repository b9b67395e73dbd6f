"""DICOM networking (DIMSE) for RefSet: the listener that modalities and PACSs
send to (Verification and Storage SCP, listener.py) and the query/retrieve client
for saved DIMSE connections (C-FIND, C-MOVE, C-GET; scu.py). Both hand every
received object to the one ingest pipeline (imaging.ingest.pipeline)."""
