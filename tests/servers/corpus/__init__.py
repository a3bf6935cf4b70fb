"""Request cases taken from other HTTP parsers' test suites (see upstream.py)."""
