"""The Textual workbench. Every number it shows comes from npu_tui.core."""
