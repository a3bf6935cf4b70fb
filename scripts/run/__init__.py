"""Stage run: one cell at a time (start the mode, check it is ready and right, warm up, load, record), the
open-loop ladder, a remote target, the machine references and the private PostgreSQL server."""
