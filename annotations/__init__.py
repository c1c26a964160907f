"""Label schemas, annotations, review/adjudication (issue: labelling workspace).

Empty until that issue lands; kept so that the layout in docs/architecture.md is the real one."""
