"""Password policy: beyond length, refuse common passwords and ones built from the email.

The list of common passwords is zxcvbn's (30,000 ranked by frequency in leaks), shipped with
the package: no network call, and it is kept up by that project rather than by hand here.
"""

from functools import cache

# Fewer distinct characters than this is a pattern, not a password ("        ", "abababab").
MIN_DISTINCT_CHARACTERS = 3
# A local part this short ("al@...") is too likely to occur in a good password by chance.
MIN_LOCAL_PART = 4


@cache
def _common() -> frozenset[str]:
    # Imported on first use: the module holds six word lists and takes ~0.1 s to load.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    passwords: list[str] = FREQUENCY_LISTS["passwords"]
    return frozenset(passwords)


def password_problem(password: str, *, email: str | None = None) -> str | None:
    """Why this password is refused, or None. With an email, it must not contain that email
    or its local part."""
    folded = password.casefold()
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return f"must use at least {MIN_DISTINCT_CHARACTERS} different characters"
    if folded.strip() in _common():
        return "is one of the most common passwords"
    if email:
        address = email.casefold()
        local = address.split("@", 1)[0]
        if address in folded or (len(local) >= MIN_LOCAL_PART and local in folded):
            return "must not contain your email address"
    return None
