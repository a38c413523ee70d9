"""``ctd serve``: a deployable gateway that decides with a certificate, logs, and watches its budget.

It sits above both layers (``ctd_stats`` and ``probes``); nothing in either imports it. FastAPI and
uvicorn come with the ``serve`` extra (``pip install -e '.[serve]'``); importing
:mod:`serve.gateway` or :mod:`serve.decisionlog` needs neither.
"""
