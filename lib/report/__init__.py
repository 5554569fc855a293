"""Reporting: figures (``plots``), the one writer of figures, tables and headlines (``outputs``), and
the papers' published numbers (``reference``)."""
from lib.report import outputs, plots, reference
