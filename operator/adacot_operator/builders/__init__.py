"""Pure builders of the Kubernetes objects one adacot resource runs as: spec in, dicts out.

Module map, one module per child object (each with its own test file under
tests/unit/operator/builders/):

- children: `build_children`, the one entry point (called by adacot_operator.handlers): resolves the
  inputs, computes the spec hash and assembles the objects below in creation order;
- configmap: the ConfigMap holding the resolved spec the stage reads;
- volumes: the output PersistentVolumeClaim and the pod's volumes and mounts;
- service: the headless Service of a multi-node SFTJob (torchrun rendezvous);
- job: the batch/v1 Job, its pod template and the stage container's env.

Nothing here talks to the API, imports kopf or the kubernetes client, or reads the environment (the
operator's settings come in as an argument). This `__init__` imports nothing, so importing one builder
costs only that builder.
"""
