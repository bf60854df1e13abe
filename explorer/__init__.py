"""The GNOCCHI Explorer dashboard (Panel). Served with `panel serve explorer/app.py`."""
