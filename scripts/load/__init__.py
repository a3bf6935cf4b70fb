"""Stage load: making load. The native engine and its process, the wrk process, the latency histogram, the
CPU and memory sampling of a process group, and the generators (one interface, one registry) over them."""
