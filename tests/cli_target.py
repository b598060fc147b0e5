def add(a: int, b: int = 1) -> int:
    """Add two numbers (a target for the CLI dispatcher test)."""
    return a + b
