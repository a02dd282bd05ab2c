"""reconciler — everything that does I/O around the pure meshdsl core: loading programs,
diffing and applying to targets (Kubernetes, local Envoy), Git sources, delivery, CLI."""
