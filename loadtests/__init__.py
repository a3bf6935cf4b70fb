"""HOW load is made: scenarios (plain data) and the locustfile built from them."""
