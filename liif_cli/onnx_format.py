"""What an ONNX export folder is: its format version, opset and file names.

A room of its own below both the exporter (`onnx_export`, torch) and the runtime (`onnxrt`, no torch), so that
neither imports the other to agree on them.
"""

FORMAT_VERSION = 1
OPSET = 17
"""ONNX opset of the exported graphs (onnxruntime 1.14 and later run it)."""
MANIFEST = "manifest.json"
GRAPHS = {"encoder": "encoder.onnx", "table": "table.onnx", "query": "query.onnx"}
