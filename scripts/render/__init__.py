"""Stage render: from analysed records to what people read (summary.md, PNG and interactive charts,
report.html, the runs index, the compare page, CSV export, the console lines)."""
