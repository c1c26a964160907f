"""A password hasher for the test suite only.

Django's PBKDF2 runs 1,000,000 iterations (about 0.8 s of CPU per password on the CI machine), and
the factories hash a password for every user they make, so most of the suite's set-up time went
into hashing. This hasher writes the same `pbkdf2_sha256` format with few iterations; Django's own
PBKDF2 hasher verifies such a hash too (the count is part of it), so servers and workers started in
subprocesses with the production settings still accept the test logins.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FewIterationsPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
