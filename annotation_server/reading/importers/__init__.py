"""Bringing existing reads in (LIDC-IDRI XML, RefSet JSON) and taking them out
(RefSet JSON): see services.py."""
