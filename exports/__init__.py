"""Dataset exports: formats, patient-grouped splits, manifests (issue: dataset exports).

Empty until that issue lands; kept so that the layout in docs/architecture.md is the real one."""
