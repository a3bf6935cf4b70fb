"""Stage 0, common: what every stage uses and that knows nothing of the pipeline (processes and their groups,
CPU sets, atomic files, number formatting)."""
