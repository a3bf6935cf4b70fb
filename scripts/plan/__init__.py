"""Stage plan: the command line to one frozen Plan (its argument parser), the machine environment, the
--target server and the user app."""
