"""adacot's Kubernetes operator (kopf). Run it with `kopf run -m adacot_operator.handlers --standalone
--all-namespaces --liveness=http://0.0.0.0:8080/healthz` (the image's entrypoint and the chart's
command), or `python -m adacot_operator [kopf run options]`: importing `handlers` registers them.

This `__init__` imports nothing, so importing any pure module below never drags in kopf. The layer is
in the path:

- pure (no kopf, no kubernetes client, no API calls; tested as data):
  settings (ADACOT_* env -> OperatorSettings), names (child names, labels, spec hash),
  resolve (producers' outputs -> the spec the pod runs, its mounts and flags),
  builders/ (children, configmap, volumes, service, job: one builder per child object),
  status / failures / summary (status as a function of the resource and its children),
  reconcile (one reconcile's decisions as data), cache (the namespace's parsed resources);
- edges: kube (the one module that talks to the API, through the kubernetes client),
  metrics (Prometheus endpoint), handlers (the only module that imports kopf: causes -> reconcile ->
  carrying out the plan through kube), __main__ (the `python -m` launcher, which calls kopf's CLI).
"""
