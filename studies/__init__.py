"""Reader studies: design (questions, arms, cases, readers), the generated reading schedule, and
(to come) readings, results and MRMC analysis (studies/mrmc.py is pure numpy/scipy)."""
