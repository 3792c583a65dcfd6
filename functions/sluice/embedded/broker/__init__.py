"""The local stand-in for a Knative Eventing Broker (the embedded default of ``sluice up``).

Speaks the broker ingress protocol (``POST /<namespace>/<broker>``), routes by the Trigger
manifests in ``triggers/``, runs each subscribed Knative Service of ``knative/`` as a
functions-framework process, applies each Trigger's delivery (retry, backoff, timeout, dead
letter) and publishes reply events back into itself. See ``docs/local-broker.md``.

Modules: ``manifests`` (topology from the YAML), ``filters`` (Trigger filters), ``delivery``
(retry rules, ISO-8601 durations), ``cloudevent`` (the event as carried), ``app`` (routing,
delivery, the HTTP app), ``processes`` (the function processes), ``deadletters`` (the log),
``server`` (the process: ``python -m sluice.embedded.broker``).
"""
