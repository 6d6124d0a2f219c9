"""`make loadtest`: Puna under load, started the production way on loopback.

`python -m deploy.loadtest` (see run.py) creates its own database, runs the release step, seeds
orgs on the business plan, starts gunicorn (deploy/gunicorn.conf.py) and a procrastinate worker,
then drives locust (locustfile.py, in its own process) through each scenario in config.py and
prints throughput, p50/p95/p99 and errors per scenario. Nothing here imports locust except
locustfile.py: locust monkey-patches the standard library with gevent.
"""
