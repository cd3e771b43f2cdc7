"""Everything the ``evaluate`` and ``report`` stages write from the metrics files.

- :mod:`vaemix.report.summary`: one row per (dataset, run), collapsed runs marked;
- :mod:`vaemix.report.paper_tables`: the papers' tables beside ours, "does it hold?" lines,
  and ``reports/README.md``;
- :mod:`vaemix.report.figures`: the figures of every run, and the small copies the report links;
- :mod:`vaemix.report.plots`: the drawing functions.
"""
