"""Image quality control rules and label-agreement math.

Plain Python on plain data (numpy arrays, pydicom datasets, dataclasses): no
Django. The Django apps call into this package; nothing here calls back.
"""
