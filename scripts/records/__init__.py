"""Stage records: the typed, versioned records a run writes (cells, open-loop ladders, faults), their one
loader, and the latency distributions they carry."""
