"""Inference engines. Each module imports its runtime (torch, onnxruntime, imageai) lazily,
when the engine is chosen, so importing the package stays cheap."""
