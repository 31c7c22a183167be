"""How every command shows a number: trial names, the console, the report.

One rule, so a value reads the same in Tune's table, MLflow's run names, the sweep's
summary and the comparison page: `digits` significant digits, a power of ten written
short (`3.0e-4`, `1.2e5`: no plus sign, no padding) below 0.01 and from 10**digits up.
"""
import math


def shown(value, digits: int = 4) -> str:
    """`value` (a number, or a param as MLflow holds it: text) for a reader. Integers and
    text that is no number are kept as they are; None, "" and non-finite numbers are ""."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if not math.isfinite(number):
            return ""
        if number.is_integer() and not any(c in value for c in ".eE"):
            return value
        value = number
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return ""
    if value != 0 and not 0.01 <= abs(value) < 10 ** digits:
        mantissa, exponent = f"{value:.{max(digits - 1, 1)}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.{digits}g}"
