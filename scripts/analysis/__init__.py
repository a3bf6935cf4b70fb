"""Stage analysis: fold repeated cells, statistics, speed checks and strategies, significance, and the
comparison of runs. It reads records and never draws."""
