"""Everything that exists only for the embedded default (no cluster): the local broker
(:mod:`sluice.embedded.broker`), the local traffic router (:mod:`sluice.embedded.router`), the
local Prometheus (:mod:`sluice.embedded.prometheus`) and the host helpers they and the local
backend share (:mod:`sluice.embedded.host`: free ports, process liveness and termination, file
locks, atomic JSON files).

On a cluster none of this runs: Knative Eventing delivers the events, Istio or Knative Serving
splits traffic and the user's Prometheus is queried."""
