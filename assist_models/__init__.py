"""Pre-labeling models behind one interface (plain Python + torch, no Django).

Weights are small, trained by us and shipped in the package; nothing is
downloaded at run time.
"""
