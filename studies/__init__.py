"""Reader studies: arms, assignments, readings, MRMC analysis (issue: reader studies).

Empty until that issue lands; kept so that the layout in docs/architecture.md is the real one."""
