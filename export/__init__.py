"""Dataset package writers, one module per format (NIFDC package, DICOM SEG/SR,
LIDC XML, LUNA16 CSV, nnU-Net, COCO), registered in an explicit dict.

Plain Python on plain data: no Django.
"""
