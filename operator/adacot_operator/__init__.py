"""adacot's Kubernetes operator (kopf). `kopf run -m adacot_operator --standalone --all-namespaces
--liveness=http://0.0.0.0:8080/healthz` imports this package, which registers the handlers.

Module map: settings (ADACOT_* env), names / resolve / manifests* (pure builders of the children),
status / failures / summary (pure status computation), reconcile (decisions as data), kube (the one
module that talks to the API), metrics (Prometheus), handlers (kopf wiring). The pure modules import
nothing of kopf; importing this package does (it registers the handlers).
"""

from adacot_operator import handlers as handlers
