"""Apps to point workerbench at: see the README's "Benchmark your own app"."""
