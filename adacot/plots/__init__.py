"""Human-facing reports written next to artifacts: PNG histograms (histogram.py), markdown summaries."""
