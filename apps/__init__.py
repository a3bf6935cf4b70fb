"""What workerbench serves: framework-free workloads and thin WSGI/ASGI adapters."""
