"""PNG charts written next to artifacts (level histograms, target vs achieved shares, loss curves),
all drawn on `canvas.png`."""
