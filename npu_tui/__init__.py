"""npu-tui: a terminal workbench for int8 weight quantization on the GRUS (GX8002) NPU."""

__version__ = "0.1.0"
