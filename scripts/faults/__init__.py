"""Stage faults: inject the same faults into every mode (settings, observing a server under load, reading a
timeline, the faults themselves, slow clients) and render their report."""
