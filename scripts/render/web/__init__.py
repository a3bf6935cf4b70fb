"""Stage render, its pages: the self-contained HTML that opens offline (the page builder, interactive charts),
and the pages built with it: a run's report.html, compare.html and the runs' index.html."""
