"""HOW an app is served: this project's own servers (classic CGI, fork per request, pre-fork) and the HTTP code
they share. The registry of every mode, these and the production servers, is :mod:`scripts.modes`."""
