"""Fixtures every test folder may use, from the test-support package (tests/support):
``kube_cluster`` (a real Kubernetes control plane), ``moto``/``moto_session`` (a real moto AWS
server), ``world``/``receiver`` (the insight world and a webhook receiver), ``ping_headers``
(the broker's test events) and ``prom_stack`` (a real Prometheus scraping the example carts)."""

pytest_plugins = [
    "tests.support.kube.cluster",
    "tests.support.moto_fixtures",
    "tests.support.insight_fixtures",
    "tests.support.broker",
    "tests.support.prometheus",
]
