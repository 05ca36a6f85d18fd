"""Deployment: ONNX export of tracker networks, the onnxruntime engine, the VOT toolkit's TraX
protocol. Optional dependencies come with the extras ``vtrack[deploy]`` and ``vtrack[vot]``."""
from vtrack.deploy.engine import Branch, Engine, OrtEngine, TorchEngine
from vtrack.deploy.export import export_engine, read_manifest, use_onnxruntime

__all__ = ["Branch", "Engine", "OrtEngine", "TorchEngine", "export_engine", "read_manifest", "use_onnxruntime"]
