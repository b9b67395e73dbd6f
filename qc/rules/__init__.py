"""QC rule functions, one module per family (header, CT pixels, radiographs, text)."""
