"""Example tools. This module runs INSIDE the sandbox, never on the host.

Call it from code run in the sandbox: `from tools.example import greet`.
"""


def greet(name: str) -> str:
    """Generate a greeting message.

    Args:
        name: Who to greet.

    Returns:
        A friendly greeting, e.g. "Hello, Ada!".
    """
    return f"Hello, {name}!"


def calculate_sum(numbers: list[float]) -> float:
    """Add up a list of numbers.

    Args:
        numbers: The numbers to add; an empty list gives 0.

    Returns:
        Their sum.
    """
    return sum(numbers)
