"""Pre-labeling models behind one interface (plain Python + torch, no Django).

interface.py  SeriesVolume in; Prediction (Proposals in the readers' finding
              model, case-level probabilities) out; ModelCard; Predictor
registry.py   the explicit registry: built-ins by dotted path, plug-ins added
              by calling register_torchscript(folder)
torchscript.py users' models: a folder with model.pt (TorchScript) and config.json
device.py     CUDA when present, else the CPU
lung_nodule/  the built-in lung-nodule model (candidates + 3D CNN), its
              training and evaluation on synthetic series

Weights are small, trained by us and shipped in the package (weights/);
nothing is downloaded at run time. torch is imported only when a model is
loaded or trained, so importing this package is cheap.
"""
